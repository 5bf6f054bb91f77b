"""Waiting for a condition in a test: poll, and fail naming what did not happen. Not a timing
assertion: the bound only stops a hung test (timings belong in bench/)."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: str = "condition", timeout_s: float = 10.0,
             interval_s: float = 0.02) -> T:
    """Call `predicate` every `interval_s` seconds until it returns a truthy value; that value.

    Raises:
        AssertionError: ``timed out after {timeout_s} s waiting for {what}``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)
