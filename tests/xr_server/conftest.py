"""Fixtures of the XR server tests."""

import argon2
import pytest

from content.storage import UserStore


@pytest.fixture
def make_store(tmp_path):
    """``make_store(name=(password, roles), ...)``: a SQLite user store with Argon2 at test cost."""
    counter = iter(range(1000))

    def make(**users):
        store = UserStore(f"sqlite:///{tmp_path / f'users{next(counter)}.sqlite'}",
                          hasher=argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        for name, (password, roles) in users.items():
            store.add(name, password, roles)
        return store
    return make
