"""phase_clock: phases inside phases keep their own time, and nothing is recorded outside ``recording``."""

from __future__ import annotations

import json
import subprocess
import sys
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
    # load slept 0.3 s (with quantize's 0.4 s it would be 0.7); the wall and CPU clocks differ in
    # their last digits, so the spun 0.4 s may read a hair under 0.4 s of wall time
    assert 0.28 <= load.seconds < 0.6 and load.cpu_seconds < 0.1
    assert quantize.cpu_seconds >= 0.4 and quantize.seconds >= 0.39
    assert 0 < quantize.cores <= 2.05


PEAK_SCRIPT = """
import json
import numpy as np
from zootool.phase_clock import recording, timed
with recording() as phases:
    with timed("small"):
        pass
    with timed("large"):
        block = np.ones(400 * 2**20 // 8)  # 400 MiB, touched
        del block
    with timed("after"):
        pass
print(json.dumps({name: phase.peak_rss_bytes for name, phase in phases.items()}))
"""


def test_the_phase_that_raised_the_peak_memory_keeps_it():
    # a fresh process: the suite's own process may already have peaked far above 400 MiB
    run = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, check=True)
    peaks = json.loads(run.stdout)
    assert peaks["large"] >= 400 * 2**20 and (peaks["small"] or 0) < peaks["large"] - 300 * 2**20
    assert peaks["after"] is None  # under the peak "large" set


def test_nothing_is_recorded_outside_a_recording():
    with timed("load"):
        pass
    with recording() as phases:
        pass
    assert phases == {}
