"""Per-line attribution on cache-filling loops (issue 9).

The loop of issue 9, ten lines: build a key, test the cache, allocate a
``bytearray``, store it, bump a counter, ``--n`` times (10,000).  Workloads:
values of 10,000 bytes (~96 MiB in all), of 64 KiB (~625 MiB), and a churn
variant whose extra last line frees the previous iteration's value, so each
iteration frees as much as it allocates (growth about 0).

Each tool's run reports, per line of the function, the memory it charged to
the line, in bytes: mempulse's ``increment`` (both tracers, depth 1),
memory_profiler's (``LineProfiler``, programmatic: it reads RSS at every
line event, the reference), and two runs that make the truth:

* ``none``: the loop untraced, RSS (``/proc/self/statm``) before and after:
  the whole loop's growth;
* ``tracemalloc``: the live bytes each line allocated and still holds when
  the loop ends (a snapshot before and after, grouped by the allocating
  line), which says how that growth divides between the lines.

Truth for a line = the untraced run's RSS growth x the line's share of
tracemalloc's live bytes, both from the same round.  A line's error is
(tool's bytes - truth) as a percentage of the loop's total growth (for the
churn loop, whose growth is about 0: of the bytes its values allocate,
n x size); "misattributed" is half the sum of the absolute errors, the part
of the memory charged to the wrong line.  Only the body's lines count
(memory_profiler also charges the ``def`` line with all the memory the
process had at the first line event).
"""
import inspect
import os

from groups import Tool, Workload
from summary import median

TITLE = "Per-line attribution on cache-filling loops"
MiB = 1 << 20
ITERATIONS = 10000
CACHE = {}

WORKLOADS = [
    Workload("cache-10K", "10 KB values", function="fill_cache", size=10000, denominator="growth"),
    Workload("cache-64K", "64 KiB values", function="fill_cache", size=65536, denominator="growth"),
    Workload("cache-churn", "10 KB values, each iteration frees the previous one", function="churn_cache",
             size=10000, denominator="allocated"),
]
TOOLS = [
    Tool("none", "untraced (RSS growth, for the truth)"),
    Tool("tracemalloc", "tracemalloc live bytes per line (for the truth)"),
    Tool("cMemoryUsageTracer", "mempulse cMemoryUsageTracer"),
    Tool("MemoryUsageTracer", "mempulse MemoryUsageTracer (psutil)", package="psutil"),
    # About 5-9 s a run here, and its figures barely move between rounds.
    Tool("memory_profiler", "memory_profiler (LineProfiler)", package="memory_profiler", max_rounds=2),
]
REPORTED = ("cMemoryUsageTracer", "MemoryUsageTracer", "memory_profiler")


def fill_cache(n, size):
    misses = 0
    for i in range(n):
        key = ("user", i)
        if key in CACHE:
            continue
        value = bytearray(size)
        CACHE[key] = value
        misses += 1
    return misses


def churn_cache(n, size):
    misses = 0
    for i in range(n):
        key = ("user", i)
        if key in CACHE:
            continue
        value = bytearray(size)
        CACHE[key] = value
        misses += 1
        CACHE.pop(("user", i - 1), None)
    return misses


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(tool, workload, options, clock):
    """Runs in the child: {line offset from the def line: bytes} charged by the tool."""
    function = globals()[workload.params["function"]]
    code = function.__code__
    args = (options.n or ITERATIONS, workload.params["size"])
    lines = {}
    before = _rss()
    start = clock()
    if tool == "none":
        function(*args)
    elif tool == "tracemalloc":
        import tracemalloc

        tracemalloc.start()
        first = tracemalloc.take_snapshot()
        function(*args)
        last = tracemalloc.take_snapshot()
        tracemalloc.stop()
        for stat in last.compare_to(first, "lineno"):
            frame = stat.traceback[0]
            if _same_file(frame.filename, code.co_filename):
                _add(lines, frame.lineno - code.co_firstlineno, stat.size_diff)
    elif tool in ("cMemoryUsageTracer", "MemoryUsageTracer"):
        import mempulse

        results = []
        with getattr(mempulse, tool)(results.append, 1):
            function(*args)
        for r in results[0]:
            if r.function == function.__name__ and _same_file(r.filename, code.co_filename):
                _add(lines, r.lineno - code.co_firstlineno, r.increment or 0)
    elif tool == "memory_profiler":
        from memory_profiler import LineProfiler

        profiler = LineProfiler()
        profiler(function)(*args)
        for lineno, value in profiler.code_map[code].items():
            _add(lines, lineno - code.co_firstlineno, int(round(value[0] * MiB)))
    else:
        raise KeyError(tool)
    seconds = clock() - start
    return {"seconds": seconds, "growth": _rss() - before, "lines": dict((str(k), v) for k, v in lines.items())}


def _add(lines, offset, value):
    # Body lines only: memory_profiler also charges the def line with the
    # whole process's memory at the first line event.
    if offset > 0:
        lines[offset] = lines.get(offset, 0) + value


def _same_file(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


# -- parent side: the table ------------------------------------------------

def attribution(runs, workload):
    """Per round: truth and each tool's bytes and errors per line; medians over rounds.

    Returns {"truth": {offset: bytes}, "denominator": bytes, tool: {"bytes": {...}, "error": {...},
    "misattributed": pct}} (medians), or None without a round that has both truth runs.
    """
    name = workload["name"]
    mine = [r for r in runs if r["workload"] == name and r.get("lines") is not None]
    rounds = sorted(set(r["round"] for r in mine))
    per_round = []
    for round_ in rounds:
        by_tool = dict((r["tool"], r) for r in mine if r["round"] == round_)
        if "none" not in by_tool or "tracemalloc" not in by_tool:
            continue
        growth = by_tool["none"]["growth"]
        weights = dict((int(k), max(v, 0)) for k, v in by_tool["tracemalloc"]["lines"].items())
        total = float(sum(weights.values()))
        truth = dict((k, growth * v / total if total > 0 else 0.0) for k, v in weights.items())
        if workload.get("denominator") == "allocated":
            denominator = float(by_tool["none"].get("n") or ITERATIONS) * workload["size"]
        else:
            denominator = float(growth)
        entry = {"truth": truth, "denominator": denominator}
        for tool in REPORTED:
            if tool not in by_tool:
                continue
            got = dict((int(k), v) for k, v in by_tool[tool]["lines"].items())
            offsets = set(got) | set(truth)
            error = dict((k, 100.0 * (got.get(k, 0) - truth.get(k, 0)) / denominator if denominator > 0 else None)
                         for k in offsets)
            known = [abs(e) for e in error.values() if e is not None]
            entry[tool] = {"bytes": got, "error": error, "misattributed": sum(known) / 2 if known else None}
        per_round.append(entry)
    if not per_round:
        return None
    out = {"rounds": len(per_round), "denominator": median([e["denominator"] for e in per_round]),
           "truth": _median_map([e["truth"] for e in per_round])}
    for tool in REPORTED:
        entries = [e[tool] for e in per_round if tool in e]
        if entries:
            out[tool] = {"bytes": _median_map([e["bytes"] for e in entries]),
                         "error": _median_map([e["error"] for e in entries]),
                         "misattributed": median([e["misattributed"] for e in entries
                                                  if e["misattributed"] is not None])}
    return out


def _median_map(maps):
    keys = set()
    for m in maps:
        keys.update(m)
    return dict((k, median([m.get(k) or 0 for m in maps])) for k in keys)


def markdown(group, data, notes):
    runs = group["runs"]
    labels = dict((t["name"], t["label"]) for t in group["tools"])
    tools = [t for t in REPORTED if t in labels]
    n = group.get("n") or ITERATIONS
    lines = []
    add = lines.append
    add("**Per-line attribution on cache-filling loops** (issue #9), n = {:,} iterations, depth 1. MiB "
        "charged to each line and, in brackets, the error: (tool - truth) as a percentage of the loop's RSS "
        "growth (churn loop: of the bytes its values allocate, n x size). Truth = the untraced run's RSS "
        "growth divided between the lines as tracemalloc's live bytes per allocating line (same round); "
        "medians over rounds%s. \"misattributed\" = half the sum of the absolute errors.".format(n)
        % _rounds_text(group))
    for w in group["workloads"]:
        result = attribution(runs, w)
        add("")
        if result is None:
            failed = [r for r in runs if r["workload"] == w["name"] and r.get("error")]
            add("%s: no result%s" % (w["title"], " (%s: %s)" % (failed[0]["tool"], failed[0]["error"])
                                     if failed else ""))
            continue
        add("*%s* (`%s`; total RSS growth %s MiB, errors relative to %.1f MiB):"
            % (w["title"], w["function"], _mib(sum(result["truth"].values())),
               result["denominator"] / float(MiB)))
        add("")
        add("| line | code | truth | " + " | ".join(labels[t] for t in tools) + " |")
        add("| ---: | --- | ---: |" + " ---: |" * len(tools))
        source, first = _source(w["function"])
        offsets = set(result["truth"])
        for t in tools:
            offsets.update(result.get(t, {}).get("bytes", {}))
        for offset in sorted(o for o in offsets if o > 0):
            row = ["%d" % offset, "`%s`" % source.get(offset, "?").strip().replace("|", "\\|"),
                   _mib(result["truth"].get(offset, 0))]
            for t in tools:
                cell = result.get(t)
                if cell is None:
                    row.append("-")
                    continue
                error = cell["error"].get(offset)
                row.append("%s (%s)" % (_mib(cell["bytes"].get(offset, 0)),
                                        "-" if error is None else "%+.1f%%" % error))
            add("| " + " | ".join(row) + " |")
        row = ["", "misattributed", ""]
        for t in tools:
            value = result.get(t, {}).get("misattributed")
            row.append("-" if value is None else "%.1f%%" % value)
        add("| " + " | ".join(row) + " |")
        missing = [t for t in tools if t not in result]
        if missing:
            for t in missing:
                why = group.get("unavailable", {}).get(t) or next(
                    (r.get("error") for r in runs if r["workload"] == w["name"] and r["tool"] == t
                     and r.get("error")), "not run")
                add("")
                add("%s on %s: %s" % (t, w["name"], why))
    add("")
    return "\n".join(lines)


def _rounds_text(group):
    limited = ["%s in the first %d" % (t["name"], t["max_rounds"]) for t in group["tools"] if t.get("max_rounds")]
    return " (%s)" % ", ".join(limited) if limited else ""


def _source(function_name):
    lines, first = inspect.getsourcelines(globals()[function_name])
    return dict(enumerate(lines)), first


def _mib(n):
    value = n / float(MiB)
    return "%+.2f" % value if abs(value) < 10 else "%+.1f" % value
