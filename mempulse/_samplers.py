"""Memory samplers: where the C tracer gets its readings.

Both samplers fill the same C interface (``mp_sampler``: a cheap ``quick``
reading and a slower ``full`` one), so the tracer logic, the aggregation
and the tests are shared; only the source of the numbers differs.
"""
import errno
import os
import sys

from mempulse._core import NONE, ffi, lib, strerror


class ProcSampler(object):
    """Reads Linux ``/proc/self/statm`` and ``smaps_rollup`` from C."""

    name = "c"

    def __init__(self, proc_dir="/proc/self"):
        self._dir = proc_dir
        self._proc = None
        # Fail at construction, not mid-trace: open and close once.
        lib.mp_proc_close(self._open_proc())

    def _open_proc(self):
        out = ffi.new("mp_proc **")
        path = self._dir if isinstance(self._dir, bytes) else self._dir.encode("utf-8")
        status = lib.mp_proc_open(path, out)
        if status != 0:
            code = ffi.errno or errno.EIO
            name = {lib.MP_ESTATM: "statm", lib.MP_EROLLUP: "smaps_rollup"}.get(status)
            if name is None:
                raise RuntimeError("mempulse: %s" % strerror(status))
            raise OSError(
                code,
                "mempulse: cannot read %s/%s (%s); cMemoryUsageTracer needs Linux 4.14+ "
                "with /proc mounted; use mempulse.MemoryUsageTracer (pip install "
                "mempulse[psutil]) instead" % (self._dir, name, os.strerror(code)),
            )
        return out[0]

    def open(self):
        """Start a sampling session; returns an ``mp_sampler *``."""
        self._proc = self._open_proc()
        sampler = ffi.new("mp_sampler *")
        lib.mp_proc_sampler(self._proc, sampler)
        return sampler

    def close(self):
        """End the session: closes the kept-open /proc files."""
        if self._proc is not None:
            lib.mp_proc_close(self._proc)
            self._proc = None

    def pending_exception(self):
        return None


def _import_psutil():
    try:
        import psutil
    except ImportError:
        raise ImportError(
            "mempulse.MemoryUsageTracer needs psutil: pip install mempulse[psutil]"
        )
    return psutil


def _peak_reader(psutil):
    """A function returning the process's peak RSS in bytes, or NONE."""
    try:
        import resource
    except ImportError:  # Windows: psutil reports the peak working set.
        proc = psutil.Process()
        return lambda: getattr(proc.memory_info(), "peak_wset", NONE)
    # ru_maxrss is KiB on Linux and the BSDs, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    getrusage, self_ = resource.getrusage, resource.RUSAGE_SELF
    return lambda: getrusage(self_).ru_maxrss * scale


class PsutilSampler(object):
    """Reads memory with psutil (Linux, macOS, Windows)."""

    name = "psutil"

    def __init__(self):
        self._psutil = _import_psutil()
        self._callbacks = None
        self._error = None

    def open(self):
        proc = self._psutil.Process()
        peak = _peak_reader(self._psutil)
        self._error = None

        def remember(exc_type, exc_value, tb):
            # A sampler failure must not surface inside the traced code;
            # the tracer re-raises it once tracing is off.
            if self._error is None:
                self._error = exc_value if exc_value is not None else exc_type()

        def quick(ctx, out):
            info = proc.memory_info()
            out.rss = info.rss
            out.peak_rss = peak()
            return 0

        def full(ctx, out):
            info = proc.memory_full_info()
            out.uss = info.uss
            swap = getattr(info, "swap", None)
            out.swap = NONE if swap is None else swap
            return 0

        signature = "int(void *, mp_usage *)"
        self._callbacks = (
            ffi.callback(signature, quick, lib.MP_ESAMPLER, remember),
            ffi.callback(signature, full, lib.MP_ESAMPLER, remember),
        )
        sampler = ffi.new("mp_sampler *")
        sampler.quick, sampler.full = self._callbacks
        return sampler

    def close(self):
        self._callbacks = None

    def pending_exception(self):
        """The exception a callback raised during the session, if any."""
        error, self._error = self._error, None
        return error


class _Meter(object):
    """TEMPORARY (lead's branch): process-wide readings over the old per-session C API."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.name = sampler.name
        self.c = sampler.open()
        self.interrupts = []

    def pending_exception(self):
        return self.sampler.pending_exception()

    def lifetime_peak(self):
        return None

    def peak_per_line(self):
        return self.c.reset_peak != ffi.NULL


_meters = {}


def meter(sampler):
    """The process-wide meter for ``sampler``'s kind (TEMPORARY shim)."""
    key = (type(sampler), os.getpid())
    m = _meters.get(key)
    if m is None:
        m = _meters[key] = _Meter(sampler)
    return m
