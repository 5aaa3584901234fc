"""phase_clock: phases inside phases keep their own time, and nothing is recorded outside ``recording``."""

from __future__ import annotations

import time

from zootool.phase_clock import recording, timed


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_an_inner_phase_keeps_its_time_out_of_the_outer_one():
    with recording() as phases:
        with timed("load"):
            time.sleep(0.2)
            with timed("quantize"):
                _spin(0.3)
            time.sleep(0.1)
        with timed("quantize"):  # a second run adds to the first
            _spin(0.1)
    assert list(phases) == ["load", "quantize"]
    load, quantize = phases["load"], phases["quantize"]
    assert 0.28 <= load.seconds < 0.4 and load.cpu_seconds < 0.1  # slept, did not spin
    assert quantize.cpu_seconds >= 0.4 and quantize.seconds >= 0.4
    assert 0 < quantize.cores <= 2.05


def test_nothing_is_recorded_outside_a_recording():
    with timed("load"):
        pass
    with recording() as phases:
        pass
    assert phases == {}
