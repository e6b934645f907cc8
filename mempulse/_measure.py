"""A traced run's totals: how much its memory grew and how high it peaked.

Used by the pytest plugin's ``limit_memory`` marker.  Growth is USS after
the run minus USS before; the peak is the highest RSS reached during the run
minus RSS at its start.

The peak comes from the run's records: with the C sampler each line's
``peak_rss`` is the highest RSS while it ran (the core resets the kernel's
high-water mark at every reading, see csrc/sample.c), so the highest over
the lines is the run's, transient spikes inside calls included, and an
earlier, higher peak of the process does not count.  Where peaks are
lifetime peaks (psutil), the kernel's mark (VmHWM), reset here before the
run through /proc/self/clear_refs, gives the run's peak on Linux; elsewhere
only a mark that rose during the run says anything about it, otherwise the
peak is unknown.
"""
import sys

from mempulse._core import ffi, from_c
from mempulse._sizes import format_size


def _reset_peak():
    """Reset the kernel's RSS high-water mark to the current RSS; False if impossible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5": reset the peak RSS (Linux 4.0+)
        return True
    except (IOError, OSError):
        return False


def _read(sampler):
    """(rss, uss, peak_rss) now, through the tracer's own kind of sampler."""
    c_sampler = sampler.open()
    try:
        usage = ffi.new("mp_usage *")
        if c_sampler.quick(c_sampler.ctx, usage) != 0 or c_sampler.full(c_sampler.ctx, usage) != 0:
            failure = sampler.pending_exception()
            if failure is not None:
                raise failure
            raise OSError("mempulse: cannot read this process's memory usage")
        return from_c(usage.rss), from_c(usage.uss), from_c(usage.peak_rss)
    finally:
        sampler.close()


def _vm_hwm():
    """The kernel's RSS high-water mark (VmHWM) in bytes, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # "VmHWM:   1234 kB"
    except (IOError, OSError, ValueError, IndexError):
        pass
    return None


class Start(object):
    """Readings taken just before the tracer is entered."""

    def __init__(self, tracer):
        self.sampler = tracer._make_sampler()
        self.reset = _reset_peak()
        self.rss, self.uss, self.peak_rss = _read(self.sampler)


class Usage(object):
    """A run's totals in bytes; ``peak`` is None where it cannot be known."""

    def __init__(self, growth, peak):
        self.growth = growth
        self.peak = peak


def finish(start, result):
    """The run's :class:`Usage`, from readings after it and its records."""
    rss, uss, peak_rss = _read(start.sampler)
    if uss is not None and start.uss is not None:
        growth = uss - start.uss
    else:
        growth = rss - start.rss
    peaks = [r.peak_rss for r in result if r.peak_rss is not None]
    if result.metadata.get("peak") == "line":
        peak = max(peaks + [rss]) - start.rss
    else:
        # Lifetime marks: one above the mark the run started with can only
        # come from the run; one at or below it tells nothing.
        evidence = [p for p in peaks + [peak_rss] if p is not None]
        evidence = [p for p in evidence if start.peak_rss is None or p > start.peak_rss]
        if start.reset:
            # psutil on Linux with part of /proc unusable: the kernel's mark,
            # reset by Start, still holds (the C sampler does this itself).
            hwm = _vm_hwm()
            if hwm is not None:
                evidence.append(hwm)
        peak = max(evidence) - start.rss if evidence else None
    return Usage(growth, peak)


def over_limit(usage, limit, result, top):
    """A message saying what went over ``limit``, with the ``top`` lines; or None."""
    from mempulse._report import format_trace_result
    from mempulse._result import TraceResult

    measures = [
        ("memory growth (USS increase over the test)", usage.growth),
        ("peak (highest RSS reached above where the test started)", usage.peak),
    ]
    over = [(name, value) for name, value in measures if value is not None and value > limit]
    if not over:
        return None
    lines = []
    for name, value in measures:
        if value is None:
            lines.append("  %s: unknown here (no resettable high-water mark)" % name)
        else:
            verdict = "EXCEEDED" if value > limit else "within"
            lines.append(
                "  %s: %s %s the limit %s" % (name, format_size(value), verdict, format_size(limit))
            )
    worst = sorted(result, key=lambda r: r.increment, reverse=True)[:top]
    if worst:
        lines.append("lines that grew most:")
        lines.append(format_trace_result(TraceResult(worst, result.metadata)).rstrip("\n"))
    return "\n".join(lines)
