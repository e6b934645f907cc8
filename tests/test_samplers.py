"""Samplers and the process-wide meter: no side effects before a trace, one
meter per process, psutil failures and interrupts, the lifetime peak."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import HAVE_PSUTIL, MiB, touched

import mempulse
from mempulse import _samplers


def _run(code):
    # Not from the checkout's root, whose mempulse/ would shadow the installed one.
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd="/",
    )
    out = proc.communicate()[0].decode("utf-8", "replace")
    assert proc.returncode == 0, out
    return out


def _vm_hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_constructing_samplers_loads_no_core_and_keeps_no_file_open():
    out = _run(
        """
        import os, sys
        from mempulse import _samplers
        core = ("mempulse._core", "mempulse._api", "mempulse._ffi")
        already = [m for m in core if m in sys.modules]  # by mempulse/__init__, not ours
        before = sorted(os.listdir("/proc/self/fd"))
        _samplers.ProcSampler()
        try:
            _samplers.PsutilSampler()
        except ImportError:
            pass
        after = sorted(os.listdir("/proc/self/fd"))
        loaded = [m for m in core if m in sys.modules and m not in already]
        print("fds %s loaded %s" % (before == after, loaded))
        """
    )
    assert "fds True loaded []" in out, out


def test_constructing_a_sampler_does_not_reset_the_peak():
    """A 100 MiB peak reached before construction is still the kernel's mark."""
    out = _run(
        """
        import mmap
        from mempulse import _samplers

        def hwm():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

        m = mmap.mmap(-1, 100 << 20)
        for i in range(0, 100 << 20, 4096):
            m[i:i + 1] = b"1"
        m.close()
        before = hwm()
        _samplers.ProcSampler()
        print("kept %s" % (hwm() >= before >= 100 << 20))
        """
    )
    assert "kept True" in out, out


def test_one_meter_per_kind_and_the_lifetime_peak_survives_resets():
    sampler = _samplers.ProcSampler()
    meter = _samplers.meter(sampler)
    assert _samplers.meter(_samplers.ProcSampler()) is meter
    assert meter.name == "c"
    # A peak reached with nobody tracing, then per-line traces that reset
    # the kernel's mark: the lifetime peak still holds it.
    m = touched(64 * MiB)
    m.close()
    high = _vm_hwm()
    for _ in range(3):
        with mempulse.cMemoryUsageTracer(lambda r: None, 1):
            x = [0] * 10
    assert meter.lifetime_peak() >= high - 4 * MiB
    if meter.peak_per_line():
        assert _vm_hwm() < high  # the trace did reset the mark
    rss, uss, swap, peak = meter.read(full=True)
    assert 0 < uss <= rss + 4 * MiB and peak >= high - 4 * MiB and x


def test_proc_sampler_bad_directory_is_a_clear_oserror():
    with pytest.raises(OSError) as info:
        _samplers.ProcSampler("/nonexistent/proc")
    assert "statm" in str(info.value) and "MemoryUsageTracer" in str(info.value)


def test_the_meter_keeps_its_files_open_once_per_process():
    def proc_fds():
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink("/proc/self/fd/" + fd)
            except OSError:
                continue
            if target.startswith("/proc/%d/" % os.getpid()):
                found.append(target)
        return sorted(found)

    with mempulse.cMemoryUsageTracer(lambda r: None, 1):
        pass
    first = proc_fds()
    for _ in range(50):
        with mempulse.cMemoryUsageTracer(lambda r: None, 1):
            pass
    assert proc_fds() == first
    assert len(first) <= 4


@pytest.mark.skipif(not HAVE_PSUTIL, reason="psutil is not installed")
def test_psutil_failure_is_raised_after_the_trace():
    import psutil

    meter = _samplers.meter(_samplers.PsutilSampler())
    real = meter.source.proc

    class Broken(object):
        def memory_info(self):
            raise psutil.AccessDenied(os.getpid())

        def memory_full_info(self):
            raise psutil.AccessDenied(os.getpid())

    try:
        with pytest.raises(psutil.AccessDenied):
            with mempulse.MemoryUsageTracer(lambda r: None, 1):
                meter.source.proc = Broken()
                for i in range(200):
                    touched(MiB).close()
    finally:
        meter.source.proc = real
        meter.pending_exception()


@pytest.mark.skipif(not HAVE_PSUTIL, reason="psutil is not installed")
def test_psutil_interrupt_is_kept_and_the_reading_retried():
    meter = _samplers.meter(_samplers.PsutilSampler())
    real = meter.source.proc
    calls = [0]

    class Interrupted(object):
        def memory_info(self):
            calls[0] += 1
            if calls[0] == 1:
                raise KeyboardInterrupt  # as a signal handler would, mid-psutil
            return real.memory_info()

        def memory_full_info(self):
            return real.memory_full_info()

    from mempulse._core import ffi, lib

    meter.interrupts[:] = []
    meter.source.proc = Interrupted()
    usage = ffi.new("mp_usage *")
    try:
        status = lib.mp_meter_read(meter.c, 0, usage)
    finally:
        meter.source.proc = real
    assert status == 0 and usage.rss > 0  # retried, and the reading succeeded
    assert calls[0] == 2
    assert len(meter.interrupts) == 1 and isinstance(meter.interrupts[0], KeyboardInterrupt)
    assert meter.pending_exception() is None  # an interrupt is not a sampler failure
    # Meter.read, used outside traced code, raises it at once.
    meter.interrupts[:] = []
    calls[0] = 0
    meter.source.proc = Interrupted()
    try:
        with pytest.raises(KeyboardInterrupt):
            meter.read(full=False)
    finally:
        meter.source.proc = real
    assert meter.interrupts == []


@pytest.mark.skipif(not HAVE_PSUTIL, reason="psutil is not installed")
def test_psutil_sampler_without_proc_fails_at_construction():
    """psutil where its /proc is unusable: a clear OSError at construction."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/unshare"):
        pytest.skip("needs root and unshare to hide /proc")
    code = (
        "import mempulse._samplers as s\n"
        "try:\n    s.PsutilSampler()\nexcept OSError as e:\n    print('OSError', e)\n"
    )
    out = subprocess.Popen(
        cwd="/",
        args=["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /proc && exec "$@"', "sh", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ).communicate()[0].decode("utf-8", "replace")
    assert "OSError" in out and "psutil" in out, out


SAMPLERS = [
    _samplers.ProcSampler,
    pytest.param(
        _samplers.PsutilSampler, marks=pytest.mark.skipif(not HAVE_PSUTIL, reason="psutil is not installed")
    ),
]


def _status_kb(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kinds are measured on Linux")
@pytest.mark.parametrize("sampler", SAMPLERS, ids=["c", "psutil"])
def test_a_reading_splits_resident_memory_by_kind(sampler):
    """anon + file + shmem is rss, and each matches the kernel's own figure."""
    from mempulse._core import ffi, lib

    meter = _samplers.meter(sampler())
    usage = ffi.new("mp_usage *")
    block = touched(16 * MiB)
    try:
        assert lib.mp_meter_read(meter.c, 0, usage) == 0
        status = dict((name, _status_kb(name)) for name in ("RssAnon", "RssFile", "RssShmem"))
    finally:
        block.close()
    assert usage.anon + usage.file + usage.shmem == usage.rss
    # Read a moment apart (and status's counters may lag by a few pages).
    assert abs(usage.anon - status["RssAnon"]) < 2 * MiB
    assert abs(usage.file - status["RssFile"]) < 2 * MiB
    assert abs(usage.shmem - status["RssShmem"]) < 2 * MiB
    assert usage.anon >= 16 * MiB
