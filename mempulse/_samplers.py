"""Memory samplers and the process-wide meters behind them.

A sampler class says where readings come from: ``ProcSampler`` (Linux
``/proc``, read from C) or ``PsutilSampler`` (psutil, Linux/macOS/Windows).
Constructing one only checks that it can work (cheaply, loading no compiled
code and keeping no file open), so a tracer fails at construction rather
than mid-trace.

The readings themselves go through a meter: one per process per kind of
sampler, made at the first trace start by :func:`meter` and shared by every
tracer of every thread (see csrc/meter.c: the USS anchor, the budget for
full readings, the peak resets and the lifetime peak are process-wide).
The compiled core is imported inside functions, never at module import.
"""
import errno
import os
import sys
import threading

from mempulse import _core


def _check_readable(path, read):
    """Open ``path`` and close it; OSError if it cannot be opened, is not a
    regular file (/dev/null mounted over it, say) or, with ``read``, is empty.

    smaps_rollup is not read here: the kernel walks the page tables for it,
    a full reading's cost (it grows with resident memory).
    """
    import stat

    with open(path, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(errno.EIO, "not a regular file")
        if read and not f.read(1):
            raise OSError(errno.EIO, "empty file")


class ProcSampler(object):
    """Reads Linux ``/proc/self/statm`` and ``smaps_rollup`` from C."""

    name = "c"
    meter = None  # the process's meter for it, once a trace made it (see meter())

    @classmethod
    def for_tracer(cls):
        """The sampler of a new cMemoryUsageTracer: the one whose meter has
        the files open, once there is one (nothing to check again)."""
        known = _proc_sampler[0]
        if known is not None and known.meter is not None:
            return known
        sampler = _proc_sampler[0] = cls()
        return sampler

    def __init__(self, proc_dir="/proc/self"):
        self._dir = proc_dir
        if self.key() in _meters:
            return  # this process's meter has the files open: they work
        for name, read in (("statm", True), ("smaps_rollup", False)):
            try:
                _check_readable(os.path.join(proc_dir, name), read)
            except (IOError, OSError) as e:
                code = getattr(e, "errno", None) or errno.EIO
                raise OSError(
                    code,
                    "mempulse: cannot read %s/%s (%s); cMemoryUsageTracer needs Linux 4.14+ "
                    "with /proc mounted; use mempulse.MemoryUsageTracer (pip install "
                    "psutil) instead" % (proc_dir, name, os.strerror(code)),
                )

    def key(self):
        """What identifies this sampler's meter in the process."""
        return (self.name, self._dir)

    def make_meter(self):
        """A new :class:`Meter` on this sampler (opens the /proc files)."""
        return _ProcMeter(self._dir)


def _import_psutil():
    from mempulse._optional import import_optional

    # Only "not installed" gets the hint; a broken psutil is shown as it is.
    return import_optional("psutil", "mempulse.MemoryUsageTracer needs psutil, which is not installed: pip install psutil")


class PsutilSampler(object):
    """Reads memory with psutil (Linux, macOS, Windows)."""

    name = "psutil"
    meter = None  # the process's meter for it, once a trace made it (see meter())

    def __init__(self):
        try:
            self._psutil = _import_psutil()
            self._psutil.Process().memory_info()
        except ImportError:
            raise
        except Exception as e:  # NoSuchProcess where /proc is missing, AccessDenied,
            # or older psutil failing in its own import without /proc.
            raise OSError(
                errno.EIO,
                "mempulse: psutil cannot read this process's memory here (%s: %s)"
                % (type(e).__name__, e),
            )

    def key(self):
        """What identifies this sampler's meter in the process."""
        return (self.name,)

    def make_meter(self):
        """A new :class:`Meter` on this sampler."""
        return _PsutilMeter(self._psutil)


class Meter(object):
    """The process-wide meter of one kind of sampler.

    ``c`` is the ``mp_meter *`` for ``mp_tracer_new``; ``name`` the
    sampler's name ("c" or "psutil"); ``interrupts`` a list of exceptions
    that did not come from the sampler (KeyboardInterrupt, or whatever a
    signal handler raised) caught inside a reading, for the caller to
    re-raise into the user's code right after the C call; ``failed`` the
    sampler's own failure, or None (see :meth:`pending_exception`).
    """

    name = None

    def __init__(self):
        self.interrupts = []
        self.failed = None

    def pending_exception(self):
        """The sampler failure to raise once tracing has stopped (then forgotten), or None."""
        error, self.failed = self.failed, None
        return error

    # The core is loaded once a meter exists; these read it through the
    # module (a function-level "from _core import" costs a failed module
    # __getattr__ per call, twice per block).
    def lifetime_peak(self):
        """The process's highest RSS in bytes, our peak resets undone; None if unknown."""
        return _core.from_c(_core.lib.mp_meter_lifetime_peak(self.c))

    def peak_per_line(self):
        """True when peaks are per line (the kernel's mark can be reset), else lifetime."""
        return bool(_core.lib.mp_meter_peak_per_line(self.c))

    def read(self, full=True):
        """(rss, uss, swap, lifetime peak) now, in bytes (None where unknown).

        ``full``: a fresh USS reading (smaps_rollup: its cost grows with
        resident memory); otherwise USS follows the last anchor.  Outside
        traced code only: an interrupt caught inside the reading (Ctrl-C
        during psutil) is raised here.
        """
        import time

        from mempulse._core import ffi, from_c, lib, strerror

        usage = ffi.new("mp_usage *")
        for _ in range(1000):
            status = lib.mp_meter_read(self.c, 1 if full else 0, usage)
            if status != lib.MP_EAGAIN or self.interrupts:
                break
            time.sleep(0.001)  # another thread's (psutil) reading: let it finish
        if self.interrupts:
            raise self.interrupts.pop(0)  # not inside traced code: raise it now
        if status != 0:
            failure = self.pending_exception()
            if failure is not None:
                raise failure
            raise OSError(errno.EIO, "mempulse: cannot read this process's memory: %s" % strerror(status))
        return from_c(usage.rss), from_c(usage.uss), from_c(usage.swap), from_c(usage.peak_rss)

    def _new_c(self, c_sampler):
        from mempulse._core import ffi, lib, strerror

        out = ffi.new("mp_meter **")
        status = lib.mp_meter_new(c_sampler, out)
        if status != 0:
            raise MemoryError("mempulse: %s" % strerror(status))
        return out[0]


class _ProcMeter(Meter):
    name = "c"

    def __init__(self, proc_dir):
        from mempulse._core import ffi, lib, strerror

        Meter.__init__(self)
        out = ffi.new("mp_proc **")
        err = ffi.new("int *")
        path = proc_dir if isinstance(proc_dir, bytes) else proc_dir.encode("utf-8")
        status = lib.mp_proc_open(path, out, err)
        if status != 0:
            code = err[0] or errno.EIO
            name = {lib.MP_ESTATM: "statm", lib.MP_EROLLUP: "smaps_rollup"}.get(status)
            if name is None:
                raise RuntimeError("mempulse: %s" % strerror(status))
            raise OSError(code, "mempulse: cannot read %s/%s (%s)" % (proc_dir, name, os.strerror(code)))
        # Kept for the life of the process: the meter is process-wide.
        self._proc = out[0]
        self._sampler = ffi.new("mp_sampler *")
        lib.mp_proc_sampler(self._proc, self._sampler)
        self.c = self._new_c(self._sampler)


def _peak_reader(psutil, source):
    """A function returning the process's peak RSS in bytes, or NONE."""
    from mempulse._core import NONE

    try:
        import resource
    except ImportError:  # Windows: psutil reports the peak working set.
        return lambda: getattr(source.process().memory_info(), "peak_wset", NONE)
    # ru_maxrss is KiB on Linux and the BSDs, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    getrusage, self_ = resource.getrusage, resource.RUSAGE_SELF
    return lambda: getrusage(self_).ru_maxrss * scale


def _kinds_reader(none):
    """A function of a psutil ``memory_info()`` giving (anon, file, shmem) in bytes.

    psutil's ``shared`` (Linux only: statm's file-backed plus shared-memory
    pages) gives anon = rss - shared; shared splits by ``RssShmem`` of
    /proc/self/status, read again only when shared moved (a heap loop pays
    nothing more, and reads no file).  ``none`` where unknown: everything
    off Linux, file and shmem on a kernel before 4.5.
    """
    state = {"shared": None, "shmem": none}

    def kinds(info):
        shared = getattr(info, "shared", None)
        if shared is None:
            return none, none, none
        shared = min(shared, info.rss)
        if shared != state["shared"]:
            state["shmem"] = _status_shmem(none)
            state["shared"] = shared
        shmem = state["shmem"]
        if shmem == none:
            return info.rss - shared, none, none
        shmem = min(shmem, shared)  # status may lag statm by a few pages
        return info.rss - shared, shared - shmem, shmem

    return kinds


def _status_shmem(none):
    """RssShmem of /proc/self/status in bytes, or ``none``."""
    try:
        with open("/proc/self/status", "rb") as f:
            text = f.read()
    except (IOError, OSError):
        return none
    start = text.find(b"\nRssShmem:")
    if start < 0:
        return none
    try:
        return int(text[start + 10:text.index(b"kB", start)]) * 1024
    except ValueError:
        return none


class _Source(object):
    """psutil's Process for the current process: psutil caches the pid, so a
    forked child makes its own."""

    def __init__(self, psutil):
        self._psutil = psutil
        self.pid = os.getpid()
        self.proc = psutil.Process()

    def process(self):
        pid = os.getpid()
        if pid != self.pid:
            self.proc = self._psutil.Process()
            self.pid = pid
        return self.proc


class _PsutilMeter(Meter):
    name = "psutil"

    def __init__(self, psutil):
        from mempulse._core import NONE, ffi, lib

        Meter.__init__(self)
        self.source = source = _Source(psutil)
        peak = _peak_reader(psutil, source)
        own_errors = (psutil.Error, EnvironmentError)
        again, failed = lib.MP_EAGAIN, lib.MP_ESAMPLER

        def guarded(read):
            # psutil's own errors are real failures (raised at exit); any
            # other exception came from outside psutil (Ctrl-C, a signal
            # handler): keep it for the caller to re-raise, and try again.
            def callback(ctx, out):
                for attempt in (0, 1):
                    try:
                        read(out)
                        return 0
                    except own_errors as e:
                        if self.failed is None:
                            self.failed = e
                        return failed
                    except BaseException as e:  # noqa: B902 - see above
                        if attempt == 1 and isinstance(e, Exception):
                            # Twice the same way: psutil itself is broken.
                            if self.failed is None:
                                self.failed = e
                            return failed
                        self.interrupts.append(e)
                return again

            return callback

        kinds = _kinds_reader(NONE)

        def quick(out):
            info = source.process().memory_info()
            out.rss = info.rss
            out.peak_rss = peak()
            out.anon, out.file, out.shmem = kinds(info)

        def full(out):
            info = source.process().memory_full_info()
            out.uss = info.uss
            swap = getattr(info, "swap", None)
            out.swap = NONE if swap is None else swap

        def last_resort(exc_type, exc_value, tb):
            # Only reached if the guard itself failed (MemoryError, say).
            if self.failed is None:
                self.failed = exc_value if exc_value is not None else exc_type()

        signature = "int(void *, mp_usage *)"
        self._callbacks = (
            ffi.callback(signature, guarded(quick), failed, last_resort),
            ffi.callback(signature, guarded(full), failed, last_resort),
        )
        self._sampler = ffi.new("mp_sampler *")
        self._sampler.quick, self._sampler.full = self._callbacks
        self._sampler.serial = 0  # the callbacks need the GIL: never wait for a reading
        self.c = self._new_c(self._sampler)


_meters = {}
_meters_lock = threading.Lock()
_proc_sampler = [None]  # see ProcSampler.for_tracer


def meter(sampler):
    """The process-wide :class:`Meter` for ``sampler``'s kind, made on first use.

    Called at trace start, never at import or construction: making the
    /proc meter opens its files (kept open for the process's life, and
    reopened in a forked child by the C core).  The sampler keeps it as
    ``sampler.meter`` for its next traces.
    """
    key = sampler.key()
    found = _meters.get(key)
    if found is None:
        with _meters_lock:
            found = _meters.get(key)
            if found is None:
                found = _meters[key] = sampler.make_meter()
    sampler.meter = found
    return found
