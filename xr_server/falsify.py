"""Falsification: a seeded adversarial search for scenarios that end in contact or a negative margin.

Sampling the scenario space at random finds the easy cases; the search here pushes towards the
hard ones. Each candidate is a point in a box of parameters (approach direction, walking speed
up to 2.5 m/s, where the person stops, when and where an arm reaches in, the tracker's rate,
latency and noise, and a short tracker dropout below the watchdog bound); its score is the
smallest of `min_margin_m` and the ground-truth `min_true_distance_m` while the robot moved
(lower is worse). A (1 + λ) evolution strategy keeps the worst candidate found so far and
perturbs it with a step that shrinks on failure to improve (the 1/5th success rule,
Rechenberg 1973), restarting from a fresh random point when the step collapses.

Every candidate that fails its scenario's judgement (contact while the robot moved, a
negative margin, a late stop) is returned as a counter-example; `bench/falsify.py` writes them
to `tests/scenarios/library/found-*.yaml` so that they become permanent scenarios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from xr_server.scenario import DEFAULT_CELL, Scenario, run_scenario

#: The search box: name -> (low, high).
BOUNDS: dict[str, tuple[float, float]] = {
    "angle_deg": (0.0, 360.0),
    "speed_mps": (0.3, 2.5),
    "start_s": (0.2, 2.0),
    "stop_m": (0.55, 1.4),
    "reach": (0.0, 1.0),           # > 0.5: an arm reaches in
    "reach_delay_s": (0.0, 1.5),
    "reach_duration_s": (0.15, 0.8),
    "target_x": (0.0, 0.8),
    "target_y": (-0.9, -0.3),
    "target_z": (0.05, 0.7),
    "tracker_rate_hz": (8.0, 30.0),
    "tracker_latency_s": (0.03, 0.2),
    "noise_m": (0.0, 0.04),
    "dropout": (0.0, 1.0),          # > 0.7: the tracker pauses for up to 0.25 s
    "dropout_at_s": (1.0, 5.0),
    "dropout_s": (0.05, 0.25),
}
_NAMES = tuple(BOUNDS)
_LOW = np.array([BOUNDS[n][0] for n in _NAMES])
_HIGH = np.array([BOUNDS[n][1] for n in _NAMES])
#: The middle of the robot's working area in `tests/scenarios/cell.yaml`.
CENTRE = (0.4, -0.7)


def scenario_from(x: np.ndarray, name: str, duration_s: float = 7.0, seed: int = 0) -> Scenario:
    """The scenario of one point of the search box (see `BOUNDS`)."""
    p = dict(zip(_NAMES, np.clip(x, _LOW, _HIGH)))
    a = math.radians(p["angle_deg"])
    far = (CENTRE[0] + 3.0 * math.cos(a), CENTRE[1] + 3.0 * math.sin(a))
    near = (CENTRE[0] + p["stop_m"] * math.cos(a), CENTRE[1] + p["stop_m"] * math.sin(a))
    arrive = p["start_s"] + (3.0 - p["stop_m"]) / p["speed_mps"]
    person = {"id": "p1", "waypoints": [[round(p["start_s"], 3), *far], [round(arrive, 3), *near]],
              "face": list(CENTRE)}
    if p["reach"] > 0.5:
        person["reaches"] = [{"start_s": round(arrive + p["reach_delay_s"], 3),
                              "duration_s": round(p["reach_duration_s"], 3), "hold_s": 1.0, "arm": "right",
                              "target": [p["target_x"], p["target_y"], p["target_z"]]}]
    faults = []
    if p["dropout"] > 0.7:
        faults.append({"kind": "tracker_freeze", "at_s": round(p["dropout_at_s"], 3), "duration_s": round(p["dropout_s"], 3)})
    return Scenario.model_validate({
        "name": name, "description": "found by the falsification search (xr_server/falsify.py)",
        "cell": str(DEFAULT_CELL), "duration_s": duration_s, "seed": seed, "people": [person],
        "tracker": {"rate_hz": p["tracker_rate_hz"], "latency_s": p["tracker_latency_s"], "noise_m": p["noise_m"],
                    "sigma_m": max(0.03, p["noise_m"] * 2)},
        "faults": faults, "expect": {"robot_moved": False},
    })


def score(result: dict) -> float:
    """Lower is worse: the smaller of the margin and, when the robot moved, the true distance."""
    margin = result["min_margin_m"] if result["min_margin_m"] is not None else math.inf
    true = -1.0 if result["contact"] else math.inf
    return min(margin, true)


@dataclass
class SearchResult:
    """What a search found: evaluations, the worst score and its scenario, counter-examples."""

    evaluations: int
    worst_score: float
    worst: Scenario | None
    counter_examples: list[Scenario]


def search(budget: int, seed: int, *, offspring: int = 4, run: Callable[[Scenario], dict] = run_scenario,
           progress: Callable[[int, float], None] | None = None) -> SearchResult:
    """Run the (1 + λ) search for `budget` scenario evaluations from RNG `seed`."""
    rng = np.random.default_rng(seed)
    span = _HIGH - _LOW
    best_x = rng.uniform(_LOW, _HIGH)
    best = score_of(best_x, rng, run, "falsify-0")
    evaluations, sigma = 1, 0.3
    found: list[Scenario] = []
    if best[2]:
        found.append(best[1])
    while evaluations < budget:
        improved = 0
        for _ in range(min(offspring, budget - evaluations)):
            x = np.clip(best_x + rng.normal(0.0, sigma, len(span)) * span, _LOW, _HIGH)
            evaluations += 1
            cand = score_of(x, rng, run, f"falsify-{evaluations}")
            if cand[2]:
                found.append(cand[1])
            if cand[0] < best[0]:
                best_x, best, improved = x, cand, improved + 1
            if progress is not None:
                progress(evaluations, best[0])
        sigma *= 1.5 if improved / offspring > 0.2 else 0.7
        if sigma < 0.02:  # collapsed: restart from a fresh point, keep the worst so far
            sigma = 0.3
            best_x = rng.uniform(_LOW, _HIGH)
    return SearchResult(evaluations, best[0], best[1], found)


def score_of(x: np.ndarray, rng: np.random.Generator, run: Callable[[Scenario], dict],
             name: str) -> tuple[float, Scenario, bool]:
    scenario = scenario_from(x, name, seed=int(rng.integers(0, 2**31)))
    result = run(scenario)
    return score(result), scenario, not result["passed"]
