"""Sample data: the real multi-camera recordings shipped in the `pose2sim` wheel.

The Pose2Sim project (Pagnon et al., JOSS 2022, BSD-3-Clause) ships two short
recordings of real people filmed by 4 calibrated cameras (Qualisys `.qca.txt`
calibration, 60 fps): `Demo_SinglePerson` and `Demo_MultiPerson`. The set-up
downloads the wheel from PyPI with pip (no install) and unpacks only the
videos and calibrations into the data folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from content.errors import ContentError

POSE2SIM_VERSION = "0.10.49"
DEMOS = ("Demo_SinglePerson", "Demo_MultiPerson")
_MARKER = ".complete"


def default_data_dir() -> Path:
    """`$XRCELL_DATA_DIR`, else `data/` at the repository root."""
    env = os.environ.get("XRCELL_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data"


def pose2sim_dir(data_dir: Path | None = None) -> Path:
    """Folder holding `Demo_SinglePerson/` and `Demo_MultiPerson/`."""
    return (data_dir or default_data_dir()) / "pose2sim"


def _wanted(name: str) -> bool:
    parts = name.split("/")
    return (len(parts) >= 4 and parts[0] == "Pose2Sim" and parts[1] in DEMOS
            and ((parts[2] == "videos" and name.endswith(".mp4"))
                 or (parts[2] == "calibration" and name.endswith(".qca.txt"))))


def fetch_pose2sim(data_dir: Path | None = None, *, log=print) -> Path:
    """Download the pose2sim wheel (no install) and unpack the demo videos and calibrations.

    Idempotent: returns at once when the files are already there.

    Returns:
        The `pose2sim` data folder.

    Raises:
        ContentError: pip could not download the wheel, or the wheel lacks the files.
    """
    target = pose2sim_dir(data_dir)
    if (target / _MARKER).is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log(f"xrcell: downloading pose2sim=={POSE2SIM_VERSION} (sample footage, ~50 MB) from PyPI ...")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               f"pose2sim=={POSE2SIM_VERSION}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("pose2sim-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise ContentError(f"could not download pose2sim=={POSE2SIM_VERSION}: {proc.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [n for n in wheel.namelist() if _wanted(n)]
            if len(members) < 2 * 5:
                raise ContentError(f"{wheels[0].name}: expected demo videos and calibrations, found {len(members)} files")
            for i, name in enumerate(members, 1):
                rel = Path(*name.split("/")[1:])
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(wheel.read(name))
                log(f"xrcell: [{i}/{len(members)}] {rel}")
    (target / _MARKER).write_text(f"pose2sim=={POSE2SIM_VERSION}\n")
    return target
