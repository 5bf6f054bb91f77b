"""The WebRTC gateway: results, exceptions and timeouts cross from its loop to the calling
thread unchanged, and stopping it closes every peer connection and ends its thread."""

import asyncio
import threading

import pytest
from xr_server.errors import GatewayError, GatewayTimeout
from xr_server.rtc_gateway import RtcGateway


@pytest.fixture
def gateway():
    gw = RtcGateway(name="rtc-gateway-test")
    gw.start()
    yield gw
    gw.stop()


async def add(a, b):
    await asyncio.sleep(0)
    return a + b


async def loop_thread_name():
    return threading.current_thread().name


def test_call_returns_the_result_computed_on_the_loop_thread(gateway):
    assert gateway.call(add, 2, 3) == 5
    assert gateway.call(loop_thread_name) == "rtc-gateway-test"


def test_call_raises_the_coroutines_exception_unchanged(gateway):
    async def fail():
        raise KeyError("no such peer")

    with pytest.raises(KeyError, match="no such peer"):
        gateway.call(fail)
    assert gateway.call(add, 1, 1) == 2  # the loop goes on


def test_a_call_that_times_out_is_cancelled_on_the_loop(gateway):
    cancelled = threading.Event()

    async def hang():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(GatewayTimeout, match=r"^hang did not finish within 0\.2 s$"):
        gateway.call(hang, timeout_s=0.2)
    assert cancelled.wait(5)
    assert gateway.call(add, 1, 2) == 3


def test_call_from_the_loop_itself_is_refused(gateway):
    async def reenter():
        return gateway.call(add, 1, 2)

    with pytest.raises(GatewayError, match="^RtcGateway.call from the gateway's own loop"):
        gateway.call(reenter)


def test_calls_before_start_and_after_stop_are_refused():
    gw = RtcGateway()
    with pytest.raises(GatewayError, match="^the WebRTC gateway is not started$"):
        gw.call(add, 1, 2)
    gw.start()
    gw.stop()
    with pytest.raises(GatewayError, match="^the WebRTC gateway is stopped$"):
        gw.call(add, 1, 2)
    with pytest.raises(GatewayError, match="^the WebRTC gateway is stopped$"):
        gw.start()
    gw.stop()  # idempotent
    with pytest.raises(ValueError, match="^timeout_s must be positive, got 0$"):
        RtcGateway().call(add, 1, 2, timeout_s=0)


def test_stop_closes_every_peer_connection_and_ends_the_thread():
    gw = RtcGateway(name="rtc-gateway-stop")
    gw.start()

    async def open_pair():
        offerer, answerer = gw.create_peer_connection(), gw.create_peer_connection()
        offerer.createDataChannel("events")
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)
        return offerer, answerer

    peers = gw.call(open_pair)
    assert gw.peer_count() == 2
    assert "a=candidate:" in peers[0].localDescription.sdp  # host candidates gathered, no STUN needed
    gw.stop()
    assert [pc.connectionState for pc in peers] == ["closed", "closed"]
    assert gw.peer_count() == 0
    assert not any(t.name == "rtc-gateway-stop" for t in threading.enumerate())


def test_stop_ends_a_call_in_progress_with_a_gateway_error():
    gw = RtcGateway()
    gw.start()
    outcome = []

    def waiter():
        try:
            gw.call(asyncio.sleep, 60, timeout_s=30)
        except GatewayError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=waiter)
    thread.start()
    while not any(not t.done() for t in gw.call(_tasks)):
        pass
    gw.stop()
    thread.join(5)
    assert outcome == ["the WebRTC gateway stopped before the call finished"]


async def _tasks():
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current]


def test_a_closed_peer_connection_is_forgotten(gateway):
    async def open_and_close():
        pc = gateway.create_peer_connection()
        pc.createDataChannel("events")
        await pc.setLocalDescription(await pc.createOffer())
        await pc.close()

    gateway.call(open_and_close)
    assert gateway.peer_count() == 0
