"""A traced run's totals: how much its memory grew and how high it peaked.

Used by the pytest plugin's ``limit_memory`` marker.  Growth is USS after
the run minus USS before; the peak is the highest RSS reached during the run
minus RSS at its start.

Readings go through the process-wide meter of the tracer's sampler (see
mempulse._samplers and csrc/meter.c), which also owns the kernel's peak mark.
With per-line peaks (the C sampler resets the mark at every reading), each
line's ``peak_rss`` is the highest RSS while it ran, so the highest over the
lines is the run's, transient spikes inside calls included, and an earlier,
higher peak of the process does not count.  With lifetime peaks (psutil, or
a /proc where the mark cannot be reset) only a mark that rose during the run
says anything about it; otherwise the peak is unknown.
"""
from mempulse._sizes import format_size


class Start(object):
    """Readings taken just before the tracer is entered."""

    def __init__(self, tracer):
        from mempulse._samplers import meter

        self.meter = meter(tracer._sampler)
        self.rss, self.uss, _, self.peak_rss = self.meter.read(full=True)


class Usage(object):
    """A run's totals in bytes; ``peak`` is None where it cannot be known."""

    def __init__(self, growth, peak):
        self.growth = growth
        self.peak = peak


def finish(start, result):
    """The run's :class:`Usage`, from readings after it and its records."""
    rss, uss, _, lifetime = start.meter.read(full=True)
    # A USS of 0 is no reading (psutil where smaps is hidden): use RSS.
    if uss and start.uss:
        growth = uss - start.uss
    else:
        growth = rss - start.rss
    peaks = [r.peak_rss for r in result if r.peak_rss is not None]
    if result.metadata.get("peak") == "line":
        peak = max(peaks + [rss]) - start.rss
    else:
        # Lifetime marks: one above the mark the run started with can only
        # come from the run; one at or below it tells nothing.
        evidence = [p for p in peaks + [lifetime] if p is not None]
        evidence = [p for p in evidence if start.peak_rss is None or p > start.peak_rss]
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
