"""The process-wide meter in a forked child: it measures the child, never
writes the parent's clear_refs, holds none of the parent's /proc files, and
never deadlocks on a lock another thread held at fork."""
import os
import sys
import threading

import pytest

from conftest import HAVE_PSUTIL, MiB, touched

import mempulse
from mempulse import _samplers

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

SAMPLERS = [
    "c",
    pytest.param("psutil", marks=pytest.mark.skipif(not HAVE_PSUTIL, reason="psutil is not installed")),
]


def _meter(name):
    sampler = _samplers.ProcSampler() if name == "c" else _samplers.PsutilSampler()
    return _samplers.meter(sampler)


def _vm_hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _proc_targets():
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith("/proc/"):
            found.append(target)
    return found


def _child(body):
    """Run body() in a forked child; its exit status is 0 if body returned
    True.  alarm() ends a child that deadlocks."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import signal

            signal.alarm(20)
            code = 0 if body() else 3
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_forked_child_measures_itself(name):
    meter = _meter(name)
    meter.read(full=True)  # the parent's anchor and files exist
    parent = os.getpid()
    keep = []

    def child():
        os.close(go_w)
        os.read(go_r, 1)  # the parent now holds 300 MiB more
        rss0, uss0 = meter.read(full=True)[:2]
        keep.append(touched(100 * MiB))
        rss1, uss1 = meter.read(full=True)[:2]
        own = [t for t in _proc_targets() if t.startswith("/proc/%d/" % parent)]
        print("child %d %d %d %s" % (rss1 - rss0, uss1 - uss0, rss1, own))
        sys.stdout.flush()
        return 95 * MiB <= rss1 - rss0 <= 110 * MiB and 95 * MiB <= uss1 - uss0 and not own

    for _ in range(3):
        go_r, go_w = os.pipe()
        pid = _child(child)
        os.close(go_r)
        big = touched(300 * MiB)
        parent_rss = meter.read(full=False)[0]
        os.write(go_w, b"x")
        os.close(go_w)
        _, status = os.waitpid(pid, 0)
        big.close()
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert parent_rss >= 300 * MiB


def test_a_child_never_resets_the_parent_s_peak():
    meter = _meter("c")
    if not meter.peak_per_line():
        pytest.skip("clear_refs refused here: no resets at all")
    meter.read(full=False)
    spike = touched(300 * MiB)
    spike.close()
    high = _vm_hwm()
    assert high >= 300 * MiB

    def child():
        for _ in range(50):  # each reading resets the (child's) mark
            touched(MiB).close()
            meter.read(full=False)
        return True

    pid = _child(child)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert _vm_hwm() >= high  # the parent's mark is untouched


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads, on purpose
@pytest.mark.parametrize("name", SAMPLERS)
def test_fork_while_another_thread_reads_never_deadlocks(name):
    meter = _meter(name)
    stop = []

    def reader():
        while not stop:
            meter.read(full=False)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(100):
            pid = _child(lambda: meter.read(full=False)[0] > 0)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    finally:
        stop.append(True)
        thread.join()


def test_fork_inside_a_block_the_child_traces_on_its_own():
    """A child forked inside a block can trace with a tracer of its own,
    which measures the child's memory."""
    results = []
    with mempulse.cMemoryUsageTracer(results.append, 1):
        meter = _meter("c")

        def child():
            # The inherited trace belongs to the parent; the C core of the
            # child still gives exact readings of the child.
            rss0 = meter.read(full=False)[0]
            keep = touched(100 * MiB)
            rss1 = meter.read(full=False)[0]
            keep.close()
            return 95 * MiB <= rss1 - rss0 <= 110 * MiB

        pid = _child(child)
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert len(results) == 1
