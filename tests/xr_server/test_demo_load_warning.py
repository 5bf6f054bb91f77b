"""`xrcell demo` warns at start when every core is already busy: its worker tracking then falls
behind its watchdogs and the robot may stand in a latched fault stop for the rest of the run."""

from xr_server.demo import machine_load_warning


def test_a_loaded_machine_gets_a_warning_naming_the_load_and_the_watchdog():
    warning = machine_load_warning(3.2, 2, tracker_timeout_s=0.5, camera_timeout_s=0.5)
    assert warning == (
        "xrcell: warning: this machine is loaded (load average 3.2 on 2 CPUs): worker tracking "
        "may fall behind its 500 ms watchdog, and a watchdog that trips is a fault stop the robot "
        "stays in until a supervisor resets it (the report's safety.fault_stops_after_startup "
        "names it)")


def test_the_shorter_watchdog_bound_is_named():
    assert "its 200 ms watchdog" in machine_load_warning(2.0, 2, tracker_timeout_s=0.5, camera_timeout_s=0.2)


def test_a_machine_with_a_core_to_spare_or_of_unknown_load_gets_none():
    assert machine_load_warning(1.9, 2, tracker_timeout_s=0.5, camera_timeout_s=0.5) is None
    assert machine_load_warning(None, 2, tracker_timeout_s=0.5, camera_timeout_s=0.5) is None
    assert machine_load_warning(5.0, None, tracker_timeout_s=0.5, camera_timeout_s=0.5) is None
