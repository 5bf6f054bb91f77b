"""Falsification search against the safety monitor, longer than the test suite's budget.

    .venv/bin/python bench/falsify.py [--budget 200] [--seed 1] [--write]

Runs `xr_server.falsify.search` (see its docstring) and prints one JSON object on its last
line: evaluations, the worst score (smallest margin or true distance, metres), the worst
scenario's parameters and the counter-examples found. With `--write`, every counter-example
is written to `tests/scenarios/library/found-<seed>-<n>.yaml`, a permanent scenario.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from xr_server.falsify import search  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    result = search(args.budget, args.seed,
                    progress=lambda n, s: print(f"[{n}/{args.budget}] worst score {s:.4f} m", file=sys.stderr, flush=True))
    written = []
    if args.write:
        for i, scenario in enumerate(result.counter_examples):
            path = REPO / "tests" / "scenarios" / "library" / f"found-{args.seed}-{i}.yaml"
            data = scenario.model_dump(mode="json", exclude_none=True)
            data["name"] = path.stem
            data["cell"] = "../cell.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False, width=120))
            written.append(str(path.relative_to(REPO)))
    print(json.dumps({"evaluations": result.evaluations, "worst_score_m": round(result.worst_score, 4),
                      "worst": None if result.worst is None else result.worst.model_dump(mode="json", exclude_none=True),
                      "counter_examples": len(result.counter_examples), "written": written,
                      "wall_s": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
