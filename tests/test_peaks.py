"""Per-line peaks: the highest RSS while a line ran, callees included.

The C sampler resets the kernel's high-water mark after each reading
(/proc/self/clear_refs), so a peak is charged to the lines running when it
happened and not to the lines after.  These tests allocate, touch and free
real memory inside an untraced callee.
"""
import os
import subprocess
import sys
import textwrap

from conftest import MiB, line_of, record_at, touched

import pytest

import mempulse

# Every test here runs under each driver (sys.settrace; sys.monitoring on 3.12+).
pytestmark = pytest.mark.usefixtures("driver")

SPIKE = 200 * MiB


def spike(n):
    """Reach n more bytes resident, then give them back (not traced at depth 1)."""
    m = touched(n)
    m.close()


def _run_spike():
    results = []
    with mempulse.cMemoryUsageTracer(results.append, 1):
        level = 1  # P:before
        spike(SPIKE)  # P:spike
        after = 2  # P:after
        done = level + after  # P:done
    return results[0]


def test_a_line_s_peak_includes_its_untraced_callee_and_is_not_inherited():
    result = _run_spike()
    before = record_at(result, line_of("P:before"))
    peak = record_at(result, line_of("P:spike"))
    assert peak.peak_rss - before.peak_rss >= SPIKE - 10 * MiB, (before, peak)
    assert abs(peak.increment) < 4 * MiB  # it gave everything back
    for marker in ("P:after", "P:done"):
        later = record_at(result, line_of(marker))
        assert later.peak_rss < peak.peak_rss - SPIKE + 10 * MiB, (marker, later, peak)
        assert later.peak_rss >= later.uss // 2


def test_peaks_are_per_line_even_when_the_parent_process_was_larger(tmpdir):
    """getrusage's peak keeps the parent's peak across exec; the sampler
    must not report that for every line (it falls back to VmHWM)."""
    script = tmpdir.join("child.py")
    script.write(
        textwrap.dedent(
            """
            import sys
            sys.path[:0] = [%r]
            import test_peaks
            from conftest import MiB
            result = test_peaks._run_spike()
            by_line = dict((r.lineno, r) for r in result)
            from conftest import line_of
            path = test_peaks.__file__.replace(".pyc", ".py")
            before = by_line[line_of("P:before", path)]
            peak = by_line[line_of("P:spike", path)]
            after = by_line[line_of("P:after", path)]
            print("%%d %%d %%d" %% (before.peak_rss // MiB, peak.peak_rss // MiB, after.peak_rss // MiB))
            """
        )
        % os.path.dirname(os.path.abspath(__file__))
    )
    # The parent holds 400 MiB resident when it starts the child.
    ballast = touched(400 * MiB)
    try:
        out = subprocess.check_output([sys.executable, str(script)])
    finally:
        ballast.close()
    before, peak, after = [int(x) for x in out.split()]
    assert before < 150, out  # the child itself is small
    assert peak - before >= 190, out
    assert after < peak - 150, out
