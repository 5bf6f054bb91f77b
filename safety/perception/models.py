"""MediaPipe Pose landmark models: the wheel ships `full`; `lite` and `heavy` come from npm.

`mediapipe==0.10.21` bundles `pose_landmark_full.tflite` (model_complexity=1) only. The
npm package `@mediapipe/pose` (installed by the set-up with the web client's packages)
carries `pose_landmark_lite.tflite` (0) and `pose_landmark_heavy.tflite` (2). MediaPipe's
solution API loads them from its own package folder, so the set-up copies them there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from safety.errors import PerceptionError

MODEL_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}


def mediapipe_model_dir() -> Path:
    """The folder MediaPipe loads pose landmark models from (found without importing mediapipe)."""
    import importlib.util

    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise PerceptionError("mediapipe is not installed: run `make demo` (or `make test`)")
    return Path(list(spec.submodule_search_locations)[0]) / "modules" / "pose_landmark"


def default_node_modules() -> Path:
    """`$XRCELL_NODE_MODULES`, else `node_modules/` at the repository root."""
    env = os.environ.get("XRCELL_NODE_MODULES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "node_modules"


def require_model(model_complexity: int) -> Path:
    """The model file for `model_complexity`, or a clear error saying how to get it.

    Raises:
        PerceptionError: unknown complexity, or the model is not installed.
    """
    if model_complexity not in MODEL_FILES:
        raise PerceptionError(f"model_complexity must be 0 (lite), 1 (full) or 2 (heavy), got {model_complexity!r}")
    path = mediapipe_model_dir() / MODEL_FILES[model_complexity]
    if not path.is_file():
        raise PerceptionError(f"MediaPipe model {path.name} is not installed in {path.parent}: "
                              "run `make demo` or `xrcell models install` (it comes from npm @mediapipe/pose)")
    return path


def install_pose_models(node_modules: Path | None = None, *, log=print) -> list[Path]:
    """Copy the lite and heavy landmark models from npm `@mediapipe/pose` into MediaPipe. Idempotent.

    Raises:
        PerceptionError: the npm package is missing.
    """
    source = (node_modules or default_node_modules()) / "@mediapipe" / "pose"
    target = mediapipe_model_dir()
    installed = []
    for complexity in (0, 2):
        name = MODEL_FILES[complexity]
        dest = target / name
        if dest.is_file():
            continue
        src = source / name
        if not src.is_file():
            raise PerceptionError(f"{src} not found: run `npm ci` in the repository (package @mediapipe/pose)")
        shutil.copyfile(src, dest)
        log(f"xrcell: installed {name} into {target}")
        installed.append(dest)
    return installed
