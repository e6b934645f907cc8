"""What each line is charged with: real allocations, real /proc readings."""
import gc
import os
import re

from conftest import MiB, line_of, record_at, touched

import pytest

import mempulse

# Every test here runs under each driver (sys.settrace; sys.monitoring on 3.12+).
pytestmark = pytest.mark.usefixtures("driver")

BIG = 64 * MiB


def allocate(n):
    return b"\x01" * n  # L:callee-alloc


def test_allocation_and_free_are_charged_to_their_own_lines(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        before = 1  # L:before
        blob = b"\x01" * BIG  # L:alloc
        after = 2  # L:after
        blob = None; gc.collect()  # L:free
        done = before + after  # L:done
    assert len(results) == 1
    result = results[0]
    alloc = record_at(result, line_of("L:alloc"))
    free = record_at(result, line_of("L:free"))
    assert BIG - 2 * MiB <= alloc.increment <= BIG + 4 * MiB
    assert -BIG - 4 * MiB <= free.increment <= -BIG + 2 * MiB
    for marker in ("L:before", "L:after", "L:done"):
        record = record_at(result, line_of(marker))
        assert abs(record.increment) < 2 * MiB, (marker, record)
        assert record.hits == 1
    # uss is the level after the line: high after the allocation, low after the free.
    assert alloc.uss - free.uss >= BIG - 4 * MiB
    assert record_at(result, line_of("L:after")).uss >= BIG
    assert done == 3


def test_every_execution_is_sampled_and_summed(tracer_class):
    results = []
    kept = []
    with tracer_class(results.append, 1):
        for i in range(5):  # L:loop
            kept.append(touched(8 * MiB))  # L:grow
            small = i  # L:small
    result = results[0]
    grow = record_at(result, line_of("L:grow"))
    assert grow.hits == 5
    assert 5 * 8 * MiB - 2 * MiB <= grow.increment <= 5 * 8 * MiB + 4 * MiB
    assert record_at(result, line_of("L:small")).hits == 5
    assert record_at(result, line_of("L:loop")).hits == 6
    assert abs(record_at(result, line_of("L:small")).increment) < 2 * MiB
    assert small == 4
    for m in kept:
        m.close()


def test_many_small_allocations_are_charged_to_their_line(tracer_class):
    """1 MiB per execution, 20 times: each charged where it happened."""
    results = []
    kept = []
    with tracer_class(results.append, 1):
        for i in range(20):
            kept.append(touched(MiB))  # L:one-mib
            x = i  # L:other
    result = results[0]
    one = record_at(result, line_of("L:one-mib"))
    other = record_at(result, line_of("L:other"))
    assert one.hits == 20
    assert 18 * MiB <= one.increment <= 22 * MiB
    assert abs(other.increment) < 2 * MiB
    assert x == 19
    for m in kept:
        m.close()


def test_records_in_order_of_first_execution_with_fields(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        a = 1  # L:first
        b = allocate(MiB)  # L:second
        c = a  # L:third
    result = results[0]
    assert isinstance(result, list)
    lines = [r.lineno for r in result]
    first, second, third = line_of("L:first"), line_of("L:second"), line_of("L:third")
    callee = line_of("L:callee-alloc")
    assert lines.index(first) < lines.index(second) < lines.index(callee) < lines.index(third)
    record = record_at(result, second)
    assert record._fields[:8] == (
        "filename", "lineno", "function", "uss", "swap", "peak_rss", "hits", "increment",
    )
    assert record.function == "test_records_in_order_of_first_execution_with_fields"
    assert record_at(result, callee).function == "allocate"
    for r in result:
        for field in ("uss", "swap", "peak_rss", "hits", "increment"):
            value = getattr(r, field)
            assert value is None or (isinstance(value, int) and value != -1), (field, r)
        assert r.uss > 0
        assert r.peak_rss >= r.uss // 2
        assert r.swap is None or r.swap >= 0
    assert c == 1 and len(b) == MiB


def test_peak_rss_covers_what_the_line_reached(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        spike = allocate(BIG); spike = None; gc.collect()  # L:spike
        calm = 0  # L:calm
    result = results[0]
    spike_line = record_at(result, line_of("L:spike"))
    calm_line = record_at(result, line_of("L:calm"))
    assert abs(spike_line.increment) < 4 * MiB
    assert spike_line.peak_rss >= spike_line.uss + BIG - 8 * MiB
    if tracer_class is mempulse.cMemoryUsageTracer:
        # Per-line peaks (tests/test_peaks.py): the next line starts low.
        assert calm_line.peak_rss <= spike_line.peak_rss - BIG + 8 * MiB
    else:
        # psutil gives the lifetime high-water mark: it does not go back down.
        assert calm_line.peak_rss >= spike_line.peak_rss
    assert calm == 0


def test_result_matches_a_direct_reading(tracer_class):
    """The last uss reported is the process's USS read independently."""
    results = []
    with tracer_class(results.append, 1):
        blob = touched(16 * MiB)  # L:last
    with open("/proc/self/smaps_rollup") as f:
        fields = dict(re.findall(r"^(\w+):\s+(\d+) kB", f.read(), re.M))
    uss = sum(int(fields[k]) * 1024 for k in ("Private_Clean", "Private_Dirty"))
    last = record_at(results[0], line_of("L:last"))
    assert abs(last.uss - uss) < 4 * MiB
    blob.close()


def test_same_callsite_in_two_calls_is_one_record(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        allocate(MiB)
        allocate(MiB)
    callee = [r for r in results[0] if r.lineno == line_of("L:callee-alloc")]
    assert len(callee) == 1
    assert callee[0].hits == 2


def test_report_table_of_a_real_trace(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        blob = b"\x05" * (8 * MiB)  # L:report
    table = mempulse.format_trace_result(results[0])
    assert "test_attribution.py:%d" % line_of("L:report") in table
    assert "{:,}".format(record_at(results[0], line_of("L:report")).uss) in table
    del blob


def test_file_descriptors_are_not_leaked(tracer_class):
    fds = sorted(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with tracer_class(lambda r: None, 1):
            pass
    assert sorted(os.listdir("/proc/self/fd")) == fds
