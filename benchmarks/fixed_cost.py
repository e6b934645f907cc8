"""Fixed cost of one traced block (issue 8 item 2): the per-request pattern.

A service wraps each request handler in
``with mempulse.cMemoryUsageTracer(cb, 1):`` and leaves it there; what that
costs per request is the block's fixed cost: construction, enter, exit and
the result, around a handler of three lines.  Each run does one warm-up
block, then times ``--n`` blocks (200) one by one and reports the mean per
block, minus nothing: the table subtracts the untraced handler call of the
same round.  A run stops early when its blocks have taken ``--budget``
seconds (a slow tracer at 2 GiB would otherwise take minutes); the table
says how many blocks it ran.

Tools: the handler untraced; ``cMemoryUsageTracer`` and
``MemoryUsageTracer`` blocks; a ``@mempulse.profile(callback=...)``
handler called once per block; the anchors, ``tracemalloc.start()`` /
``get_traced_memory()`` / ``stop()`` and ``sys.settrace(f)`` /
``sys.settrace(None)`` around each call.  Workloads: a small process, and
one with 2 GiB resident in 4 KiB pages (workloads.make_resident).
"""
import sys

import workloads
from groups import Tool, Workload
from summary import median

TITLE = "Fixed cost of one traced block"
MiB = 1 << 20
BLOCKS = 200

WORKLOADS = [
    Workload("fixed", "small process"),
    Workload("fixed-2G", "large process", resident=2048 * MiB),
]
TOOLS = [
    Tool("none", "handler untraced"),
    Tool("cMemoryUsageTracer", "`with cMemoryUsageTracer(cb, 1):`"),
    Tool("MemoryUsageTracer", "`with MemoryUsageTracer(cb, 1):` (psutil)", package="psutil"),
    Tool("profile", "`@mempulse.profile(callback=cb)`, per call"),
    Tool("tracemalloc", "`tracemalloc.start()`, `get_traced_memory()`, `stop()`"),
    Tool("settrace", "`sys.settrace(f)`, `sys.settrace(None)`"),
]
ANCHOR_AGE_KEYS = ("uss_age", "uss_anchor_age")  # what the engine may name it


def _is_anchor_age(key):
    return key in ANCHOR_AGE_KEYS or ("age" in key and ("uss" in key or "anchor" in key))


def handler(request):
    key = request * 2
    values = [key] * 4
    return len(values)


def _noop_local(frame, event, arg):
    return _noop_local


def _noop_global(frame, event, arg):
    return _noop_local


def _block_factory(tool, results):
    """A function that runs one block of ``tool`` around handler(i)."""
    if tool == "none":
        return handler
    if tool in ("cMemoryUsageTracer", "MemoryUsageTracer"):
        import mempulse

        tracer_class = getattr(mempulse, tool)

        def block(i):
            with tracer_class(results.append, 1):
                handler(i)

        return block
    if tool == "profile":
        import mempulse

        return mempulse.profile(callback=results.append)(handler)
    if tool == "tracemalloc":
        import tracemalloc

        def block(i):
            tracemalloc.start()
            handler(i)
            results.append(tracemalloc.get_traced_memory())
            tracemalloc.stop()

        return block
    if tool == "settrace":
        def block(i):
            sys.settrace(_noop_global)
            handler(i)
            sys.settrace(None)

        return block
    raise KeyError(tool)


REFERENCE_ITERATIONS = 20000


def reference_us(clock):
    """The median of 5 timings of a plain Python loop, in this process: this
    shared machine's speed moves by up to twice between processes, and the
    table shows it beside the blocks (it changes no figure)."""
    times = []
    for _ in range(5):
        start = clock()
        workloads.loop(REFERENCE_ITERATIONS)  # the loop group's workload, shorter
        times.append(clock() - start)
    return median(times) * 1e6


def measure(tool, workload, options, clock):
    """Runs in the child: time options.n blocks, one by one."""
    results = []
    reference = reference_us(clock)
    block = _block_factory(tool, results)
    block(0)  # warm-up: first imports, first /proc opens, caches
    del results[:]
    times = []
    spent = 0.0
    for i in range(options.n or BLOCKS):
        start = clock()
        block(i)
        took = clock() - start
        times.append(took)
        spent += took
        if spent > options.budget:
            break
    out = {"seconds": spent, "blocks": len(times), "block_median": median(times), "block_max": max(times),
           "reference_us": reference}
    metadata = [getattr(r, "metadata", None) for r in results]
    metadata = [m for m in metadata if m]
    if metadata:
        out["metadata_keys"] = sorted(metadata[-1])
        ages = {}
        for key in sorted(metadata[-1]):
            if _is_anchor_age(key):
                ages[key] = [m.get(key) for m in metadata if isinstance(m.get(key), (int, float))]
        if ages:
            out["anchor_age"] = dict((k, {"median": median(v), "max": max(v)}) for k, v in ages.items() if v)
        out["records"] = median([len(r) for r in results])
    return out


# -- parent side: the table ------------------------------------------------

def per_block(runs):
    """{(workload, tool): {"us": median µs per block over rounds, ...}} against the round's untraced call."""
    # The untraced call's median: one scheduling hiccup among 200 calls of
    # a fraction of a µs would dominate their mean.
    base = dict(((r["workload"], r["round"]), r["block_median"])
                for r in runs if r["tool"] == "none" and r.get("blocks"))
    cells = {}
    for key in set((r["workload"], r["tool"]) for r in runs):
        mine = [r for r in runs if (r["workload"], r["tool"]) == key]
        good = [r for r in mine if r.get("blocks") and (key[0], r["round"]) in base]
        errors = [r.get("error") or r.get("not_applicable") for r in mine if not r.get("blocks")]
        cell = {"rounds": len(good), "error": errors[0] if errors and not good else None}
        if good:
            added = [(r["block_median"] if key[1] == "none" else
                      r["seconds"] / r["blocks"] - base[(key[0], r["round"])]) for r in good]
            cell["us"] = median(added) * 1e6
            cell["median_us"] = median([r["block_median"] - (0 if key[1] == "none" else base[(key[0], r["round"])])
                                        for r in good]) * 1e6
            cell["blocks"] = min(r["blocks"] for r in good)
            ages = {}
            for r in good:
                for name, stats in (r.get("anchor_age") or {}).items():
                    ages.setdefault(name, []).append(stats["median"])
            cell["anchor_age"] = dict((k, median(v)) for k, v in ages.items())
            cell["metadata_keys"] = good[-1].get("metadata_keys")
        cells[key] = cell
    return cells


def markdown(group, data, notes):
    runs = group["runs"]
    cells = per_block(runs)
    wl = group["workloads"]
    lines = []
    add = lines.append
    add("**Fixed cost of one traced block** (issue #8): a three-line handler, one warm-up block, then %d blocks "
        "timed one by one; microseconds per block (construction, enter, exit, result) over the untraced "
        "handler call of the same round (its median call): the mean over the run's blocks and, in brackets, "
        "the median block; medians over rounds:" % (group.get("n") or BLOCKS))
    add("")
    header = ["tool"] + ["%s (RSS %s)" % (w["title"], _size(_rss(runs, w["name"]))) for w in wl]
    two = len(wl) == 2
    if two:
        header.append("%s / %s" % (wl[1]["title"], wl[0]["title"]))
    add("| " + " | ".join(header) + " |")
    add("| --- |" + " ---: |" * (len(header) - 1))
    for tool in group["tools"]:
        row = [tool["label"]]
        values = []
        for w in wl:
            cell = cells.get((w["name"], tool["name"]), {})
            if cell.get("us") is None:
                why = group.get("unavailable", {}).get(tool["name"])
                row.append("not installable %s" % notes.ref("%s: %s" % (tool["name"], why)) if why else
                           "failed %s" % notes.ref("%s on %s: %s" % (tool["name"], w["name"],
                                                                     cell.get("error") or "not run")))
                values.append(None)
                continue
            if tool["name"] == "none":
                text = "(median call %.2f µs)" % cell["us"]
            else:
                text = "%s (%s)" % (_fmt_us(cell["us"]), _fmt_us(cell["median_us"]))
            expected = group.get("n") or BLOCKS
            if cell.get("blocks", expected) < expected:
                text += " " + notes.ref("%s on %s: its blocks took over the %g s budget of a run; %d blocks "
                                        "timed (fewest over rounds)" % (tool["name"], w["name"],
                                                                        group.get("budget", 0), cell["blocks"]))
            row.append(text)
            values.append(cell["us"])
        if two:
            row.append("-" if tool["name"] == "none" or None in values or values[0] <= 0
                       else "%.1fx" % (values[1] / values[0]))
        add("| " + " | ".join(row) + " |")
    add("")
    add(_anchor_age_text(group, cells))
    add("")
    add(_reference_text(runs))
    add("")
    c_small = cells.get(("fixed", "cMemoryUsageTracer"), {}).get("us")
    c_big = cells.get(("fixed-2G", "cMemoryUsageTracer"), {}).get("us")
    targets = []
    if c_small is not None:
        targets.append(("cMemoryUsageTracer, µs per block, small process", _fmt_us(c_small), "<= 50 µs",
                        c_small <= 50))
    if c_small and c_big is not None:
        ratio = c_big / c_small
        targets.append(("cMemoryUsageTracer, µs per block, large (2 GiB) / small process", "%.1fx" % ratio,
                        "<= 1.5x", ratio <= 1.5))
    if targets:
        add("Against issue #8's targets:")
        add("")
        add("| measure | value | target | met |")
        add("| --- | ---: | ---: | --- |")
        for label, value, target, met in targets:
            add("| %s | %s | %s | %s |" % (label, value, target, "yes" if met else "**no**"))
        add("")
    return "\n".join(lines)


def _anchor_age_text(group, cells):
    """What the mempulse tracers' results said about the age of their USS anchor."""
    parts, keys = [], None
    for tool in group["tools"]:
        for w in group["workloads"]:
            cell = cells.get((w["name"], tool["name"]), {})
            keys = keys or cell.get("metadata_keys")
            for name, age in sorted((cell.get("anchor_age") or {}).items()):
                parts.append("%s, %s: %s" % (tool["name"], w["title"], _fmt_age(name, age)))
                key = name
    if parts:
        return ("USS anchor age (`result.metadata[%r]`), median over blocks and rounds: %s."
                % (key, "; ".join(parts)))
    if keys:
        return ("`result.metadata` has no USS anchor age (its keys: %s)."
                % ", ".join("`%s`" % k for k in keys))
    return "No mempulse result carried metadata."


def _reference_text(runs):
    """The machine's speed during the cMemoryUsageTracer runs (see reference_us)."""
    mine = [r for r in runs if r["tool"] == "cMemoryUsageTracer" and r.get("reference_us")]
    if not mine:
        return "No reference loop was timed."
    refs = [r["reference_us"] for r in mine]
    return ("Machine speed: in the same processes as the `cMemoryUsageTracer` blocks, a plain Python loop of "
            "%s iterations took %s µs (median; %s to %s over runs): the blocks' figures move with it."
            % ("{:,}".format(REFERENCE_ITERATIONS), _fmt_us(median(refs)), _fmt_us(min(refs)), _fmt_us(max(refs))))


def _rss(runs, workload):
    return median([r["rss_before"] for r in runs if r["workload"] == workload and r.get("rss_before")]) or 0


def _size(n):
    return "%.2f GiB" % (n / float(1 << 30)) if n >= 1 << 30 else "%.0f MiB" % (n / float(MiB))


def _fmt_us(us):
    return "{:,.0f}".format(us) if abs(us) >= 100 else "%.1f" % us


def _fmt_age(key, age):
    """The age in ms; the key's suffix says its unit (seconds without one)."""
    if not isinstance(age, (int, float)):
        return str(age)
    per_ms = {"_ns": 1e6, "_us": 1e3, "_ms": 1.0}.get(key[-3:], 1e-3)
    return "%.3g ms" % (age / per_ms)
