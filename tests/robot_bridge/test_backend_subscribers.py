"""`robot_bridge.backend.StateSubscribers`: the state listeners every backend's `subscribe` keeps.

The backends' own threads calling it are covered by the contract tests (`Recorder`); here the
list itself, with plain values standing in for `RobotState`s (it never looks inside them).
"""

from __future__ import annotations

import logging
import threading

from robot_bridge.backend import StateSubscribers


def test_every_listener_gets_every_state_in_the_order_they_subscribed():
    subs = StateSubscribers()
    got: list[tuple[str, object]] = []
    subs.subscribe(lambda s: got.append(("a", s)))
    subs.subscribe(lambda s: got.append(("b", s)))
    subs.notify(1)  # type: ignore[arg-type]
    subs.notify(2)  # type: ignore[arg-type]
    assert got == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_unsubscribe_ends_that_subscription_only_and_twice_is_harmless():
    subs = StateSubscribers()
    got: list[object] = []
    first = subs.subscribe(got.append)
    subs.subscribe(got.append)  # the same callback twice: two subscriptions
    subs.notify("x")  # type: ignore[arg-type]
    first()
    first()
    subs.notify("y")  # type: ignore[arg-type]
    assert got == ["x", "x", "y"]


def test_a_failing_listener_is_logged_and_the_others_still_run(caplog):
    subs = StateSubscribers()
    got: list[object] = []

    def broken(state: object) -> None:
        raise RuntimeError("listener bug")

    subs.subscribe(broken)
    subs.subscribe(got.append)
    with caplog.at_level(logging.ERROR, logger="robot_bridge.backend"):
        subs.notify("s")  # type: ignore[arg-type]
    assert got == ["s"]
    assert "state subscriber" in caplog.text and "listener bug" in caplog.text


def test_a_listener_may_unsubscribe_itself_or_subscribe_another_while_notified():
    """Changes made during a notification apply from the next one (the list is copied on write),
    and no lock is held while callbacks run (else these calls would deadlock)."""
    subs = StateSubscribers()
    got: list[tuple[str, object]] = []
    stop_once: list = []

    def once(state: object) -> None:
        got.append(("once", state))
        stop_once[0]()
        subs.subscribe(lambda s: got.append(("late", s)))

    stop_once.append(subs.subscribe(once))
    subs.notify(1)  # type: ignore[arg-type]
    subs.notify(2)  # type: ignore[arg-type]
    assert got == [("once", 1), ("late", 2)]


def test_subscriptions_from_many_threads_are_all_kept():
    subs = StateSubscribers()
    counts = [0] * 8
    lock = threading.Lock()

    def add(i: int) -> None:
        def count(state: object) -> None:
            with lock:
                counts[i] += 1
        for _ in range(50):
            subs.subscribe(count)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    subs.notify("s")  # type: ignore[arg-type]
    assert counts == [50] * 8
