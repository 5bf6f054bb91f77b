"""The falsification search, on a bounded budget (the long run is bench/falsify.py)."""

import numpy as np

from xr_server.falsify import BOUNDS, scenario_from, score, search


def test_a_bounded_search_finds_no_counter_example():
    result = search(budget=6, seed=2026, offspring=2)
    assert result.evaluations == 6
    assert result.counter_examples == [], [s.model_dump() for s in result.counter_examples]
    assert result.worst_score >= 0.0


def test_the_search_descends_on_its_score_and_reports_failures():
    # A scripted objective (no simulation) checks the search itself: the "margin" is the
    # approach direction's distance from 90 deg, negative within 18 deg of it. The search must
    # find that region and hand back every failing candidate.
    def fake_run(scenario):
        (_, x, y) = scenario.people[0].waypoints[0]
        angle = np.degrees(np.arctan2(y + 0.7, x - 0.4)) % 360
        margin = abs(angle - 90.0) / 360.0 - 0.05
        return {"min_margin_m": margin, "contact": False, "passed": margin >= 0.0}

    result = search(budget=60, seed=3, offspring=4, run=fake_run)
    assert result.worst_score < 0.0 and result.counter_examples
    assert all(fake_run(s)["min_margin_m"] < 0.0 for s in result.counter_examples)
    assert score({"min_margin_m": 0.2, "contact": True}) == -1.0


def test_every_point_of_the_box_is_a_valid_scenario():
    rng = np.random.default_rng(0)
    low = np.array([b[0] for b in BOUNDS.values()])
    high = np.array([b[1] for b in BOUNDS.values()])
    for i in range(50):
        s = scenario_from(rng.uniform(low, high), f"x{i}")
        assert s.people and s.duration_s == 7.0
