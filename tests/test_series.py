"""Memory over time: ``TraceResult.series``, the bounded series of readings."""
import gc
import mmap
import os
import threading

import pytest
from conftest import MiB, line_of, touched

import mempulse
from mempulse._export import result_from_dict

# Every test here runs under each driver (sys.settrace; sys.monitoring on 3.12+).
@pytest.fixture(autouse=True)
def _collected():
    """Earlier tests' garbage is collected now, not inside this test's trace (PyPy)."""
    gc.collect()


pytestmark = pytest.mark.usefixtures("driver")

MAX_POINTS = 4096
PATTERN = b"\x5a" * MiB
HERE = os.path.normcase(os.path.abspath(__file__)).replace(".pyc", ".py")


def same_file(filename):
    return filename is not None and os.path.normcase(os.path.abspath(filename)) == HERE


def check_shape(series):
    """Points in time order from 0, bytes as ints, lines as (file, int) or (None, None)."""
    assert 2 <= len(series) <= MAX_POINTS
    assert all(type(p) is mempulse.MemoryPoint for p in series)
    assert series[0].time == 0.0
    times = [p.time for p in series]
    assert times == sorted(times)
    for p in series:
        assert isinstance(p.time, float)
        assert p.rss > 0 and (p.uss is None or p.uss > 0)
        assert (p.filename is None) == (p.lineno is None)


def test_a_short_trace_has_its_readings_with_the_lines_that_ran(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        # A fresh mapping, given back at once on every interpreter (PyPy's
        # GC would free a bytearray later), filled by no Python function of
        # its own (a callee's lines are level 1, and the point would name them).
        blob = mmap.mmap(-1, 40 * MiB, flags=mmap.MAP_PRIVATE)
        blob.write(PATTERN * 40)  # L:series-alloc
        blob.close()  # L:series-free
        # A later line: Python 2's settrace keeps a frame's locals in
        # f_locals until its next event, so the free happens there.
        done = True
    series = results[0].series
    check_shape(series)
    start_rss = series[0].rss
    top = max(series, key=lambda p: p.rss)
    # The highest reading ended the allocating line, 40 MiB above the start.
    assert top.rss >= start_rss + 36 * MiB
    assert same_file(top.filename) and top.lineno == line_of("L:series-alloc")
    assert series[-1].rss <= top.rss - 36 * MiB  # freed by the end
    assert series[0].filename is None  # the start: no line was running yet


def test_a_long_run_stays_bounded_and_keeps_its_peak(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        for i in range(1500):  # about 5 readings each: beyond the bound
            block = mmap.mmap(-1, MiB)
            block.write(PATTERN)  # fresh pages each time: memory moves, every line reads
            if i == 750:
                spike = mmap.mmap(-1, 64 * MiB, flags=mmap.MAP_PRIVATE)
                spike.write(PATTERN * 64)  # L:series-spike
                spike.close()
            block.close()
    series = results[0].series
    check_shape(series)
    assert len(series) > MAX_POINTS // 2  # many more readings than points
    top = max(series, key=lambda p: p.rss)
    churn = sorted(p.rss for p in series)[len(series) // 2]
    assert top.rss >= churn + 60 * MiB
    assert same_file(top.filename) and top.lineno == line_of("L:series-spike")
    # The spike is in the middle of the run, not at an end.
    assert series[0].time < top.time < series[-1].time


def grow_in_thread(kept):
    kept.append(touched(24 * MiB))  # L:series-thread


def test_threads_readings_are_merged_in_time_order(tracer_class):
    results = []
    kept = []
    with tracer_class(results.append, 1):
        thread = threading.Thread(target=grow_in_thread, args=(kept,))
        thread.start()
        thread.join()
    series = results[0].series
    check_shape(series)
    lines = set(p.lineno for p in series if same_file(p.filename))
    assert line_of("L:series-thread") in lines
    for m in kept:
        m.close()


def test_the_series_goes_through_json_and_pickle(tracer_class):
    import pickle

    results = []
    with tracer_class(results.append, 1):
        blob = touched(8 * MiB)
        blob.close()
    result = results[0]
    data = result.to_dict()
    assert data["series"][0] == {"time": 0.0, "rss": result.series[0].rss, "uss": result.series[0].uss,
                                 "filename": None, "lineno": None}
    assert result_from_dict(data).series == result.series
    assert pickle.loads(pickle.dumps(result)).series == result.series
