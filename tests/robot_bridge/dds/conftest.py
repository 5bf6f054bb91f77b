"""The `cell` fixture of the dds backend tests: a peer robot process and a started `DdsBackend`."""

import pytest

from robot_bridge.backend import create_backend
from robot_bridge.dds import LOOPBACK_CONFIG
from tests.robot_bridge.dds.peer_client import Peer, next_domain, wait_for


@pytest.fixture
def cell():
    """make(*peer_args, **backend_args) -> (peer, backend) on a fresh domain; the backend is
    started and has its first state (its stop is still held)."""
    made = []

    def make(*peer_args: str, **backend_args):
        domain = next_domain()
        peer = Peer(domain, *peer_args)
        made.append(peer)
        backend_args.setdefault("state_timeout_s", 0.5)
        backend = create_backend("dds", domain_id=domain, dds_config=LOOPBACK_CONFIG,
                                 tcp_link="panda_grasptarget", **backend_args)
        made.append(backend)
        backend.start()
        wait_for(lambda: backend.latest_state() is not None, "the first state")
        return peer, backend

    yield make
    for item in reversed(made):
        if isinstance(item, Peer):
            item.close()
        else:
            item.shutdown()
