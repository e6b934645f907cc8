"""``@pytest.mark.limit_leaks``: does a test's memory keep growing when it runs again?

The test body runs ``warmups`` times (caches, imports and pools fill up),
then ``runs`` times, each traced into one :class:`mempulse.Profile`, with
a collection and a full USS reading before and after each run.  A leak
shows as growth in every run; a one-off (an arena, a cache filled late)
in one run only, so the verdict is the median run's growth, compared with
the limit.  The failure shows each run's growth and the lines that grew
most over all runs.
"""
import gc

import pytest

from mempulse._sizes import format_size

TOP_LINES = 5


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


def _uss(meter):
    rss, uss, _, _ = meter.read(full=True)
    return uss if uss else rss  # psutil where smaps is hidden: RSS


def check_leaks(plan, func, kwargs):
    """Run the rest of the warm-ups and the measured runs; pytest.fail on a leak."""
    from mempulse import _samplers
    from mempulse._aggregate import Profile

    size, runs, warmups = plan.leaks
    for _ in range(warmups - 1):  # plan.run made the first
        func(**kwargs)
    prof = Profile(depth=plan.depth)
    growths = []
    try:
        for _ in range(runs):
            tracer = prof.call_tracer(steps_aside=True)
            if tracer is None:
                plan.fail_if_traced("limit_leaks")
            meter = _samplers.meter(tracer._sampler)
            gc.collect()
            before = _uss(meter)
            with tracer:
                func(**kwargs)
            gc.collect()
            growths.append(_uss(meter) - before)
        result = prof.result()
    finally:
        prof.close()
    result.metadata["leak_runs"] = growths
    plan.save(result)
    median = _median(growths)
    if median <= size:
        return
    from mempulse._report import format_trace_result
    from mempulse._result import TraceResult

    marker = plan.item.get_closest_marker("limit_leaks")
    lines = [
        "mempulse: %s leaks: its memory (USS) grew by %s per run (median of %d runs), "
        "more than %s allows" % (plan.item.name, format_size(median), runs, _marker_text(marker)),
        "  growth of each run: %s" % ", ".join(_signed(g) for g in growths),
    ]
    worst = sorted(result, key=lambda r: r.increment, reverse=True)[:TOP_LINES]
    if worst:
        lines.append("lines that grew most (all %d runs):" % runs)
        lines.append(format_trace_result(TraceResult(worst, result.metadata)).rstrip("\n"))
    pytest.fail("\n".join(lines), pytrace=False)


def _signed(n):
    return ("+" if n > 0 else "") + "{:,}".format(n)


def _marker_text(marker):
    parts = [repr(a) for a in marker.args]
    parts += ["%s=%r" % kv for kv in sorted(marker.kwargs.items())]
    return "limit_leaks(%s)" % ", ".join(parts)
