"""The scenario library: every scripted scenario, through the real monitor, gate and simulated robot.

Each scenario must end without contact while the robot moved, with min_margin_m >= 0 over
the cycles that let the robot move, every stop within T_r + T_s(v), and every injected fault
caught within its watchdog bound. The figures are printed for the closing note; the library
summary (false stops, worst margin) comes from `xrcell scenario tests/scenarios/library/*.yaml`.
"""

import json
from pathlib import Path

import pytest

from xr_server.scenario import load_scenario, run_scenario

LIBRARY = sorted((Path(__file__).parent / "library").glob("*.yaml"))


def test_the_library_has_at_least_50_scenarios():
    assert len(LIBRARY) >= 50


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_scenario(path):
    result = run_scenario(load_scenario(path))
    print(json.dumps({k: result[k] for k in ("min_margin_m", "min_separation_m", "contact", "stops",
                                              "false_stop_s", "fault_stop_after_s", "commands_accepted")}))
    assert result["passed"], result["failures"]
