"""Call-heavy code at depth 2 and 3, both drivers (issue 8 item 3).

``calls(n)`` runs ``loop -> mid -> leaf`` n times (100,000); traced as the
block's callee it is level 1, ``mid`` level 2, ``leaf`` level 3.  At depth 2
every iteration calls a function that is too deep (``leaf``), at depth 3
every level is traced.  Tools: untraced; cMemoryUsageTracer with its
default driver (sys.monitoring on 3.12+; n/a before, where the default is
settrace) and with ``MEMPULSE_DRIVER=settrace``; and the floors of each
kind: a no-op settrace tracer and a no-op sys.monitoring LINE callback on
the code objects within the depth.  The clock covers the tracer's start,
the calls, its stop and the table (the callback formats it).
"""
import os
import sys

from groups import Tool, Workload
from summary import median
from tools import NotApplicable

TITLE = "Call-heavy code at depth 2 and 3"
ITERATIONS = 100000

WORKLOADS = [
    Workload("calls-d2", "depth 2", depth=2),
    Workload("calls-d3", "depth 3", depth=3),
]
TOOLS = [
    Tool("none", "untraced"),
    Tool("noop-settrace", "no-op settrace tracer, same frames"),
    Tool("noop-monitoring", "no-op sys.monitoring LINE callback, same code"),
    Tool("monitoring", "cMemoryUsageTracer, sys.monitoring driver"),
    Tool("settrace", "cMemoryUsageTracer, `MEMPULSE_DRIVER=settrace`", env={"MEMPULSE_DRIVER": "settrace"}),
]


def leaf(x):
    return x + 1


def mid(x):
    return leaf(x) * 2


def calls(n):
    total = 0
    for i in range(n):
        total += mid(i)
    return total


LEVELS = [calls.__code__, mid.__code__, leaf.__code__]


def measure(tool, workload, options, clock):
    n = options.n or ITERATIONS
    depth = workload.params["depth"]
    traced = LEVELS[:depth]
    out = {}
    if tool == "none":
        start = clock()
        calls(n)
    elif tool == "noop-settrace":
        def local(frame, event, arg):
            return local

        def global_(frame, event, arg):
            return local if frame.f_code in traced else None

        start = clock()
        sys.settrace(global_)
        try:
            calls(n)
        finally:
            sys.settrace(None)
    elif tool == "noop-monitoring":
        monitoring = _monitoring()
        tool_id = next(i for i in (4, 3, 5, 0, 1, 2) if monitoring.get_tool(i) is None)
        start = clock()
        monitoring.use_tool_id(tool_id, "mempulse-bench-noop")
        monitoring.register_callback(tool_id, monitoring.events.LINE, lambda code, line: None)
        for code in traced:
            monitoring.set_local_events(tool_id, code, monitoring.events.LINE)
        try:
            calls(n)
        finally:
            for code in traced:
                monitoring.set_local_events(tool_id, code, 0)
            monitoring.register_callback(tool_id, monitoring.events.LINE, None)
            monitoring.free_tool_id(tool_id)
    else:
        if tool == "monitoring":
            _monitoring()
        import mempulse

        tables = []
        results = []

        def callback(result):
            results.append(result)
            tables.append(mempulse.format_trace_result(result))

        start = clock()
        with mempulse.cMemoryUsageTracer(callback, depth):
            calls(n)
        out["driver"] = results[0].metadata.get("driver")
        out["records"] = len(results[0])
        out["hits"] = sum(r.hits for r in results[0])
    out["seconds"] = clock() - start
    if tool == "monitoring" and out.get("driver") != "sys.monitoring":
        raise RuntimeError("expected the sys.monitoring driver, mempulse used %r" % out.get("driver"))
    if tool == "settrace" and out.get("driver") != "sys.settrace":
        raise RuntimeError("MEMPULSE_DRIVER=%r: expected sys.settrace, mempulse used %r"
                           % (os.environ.get("MEMPULSE_DRIVER"), out.get("driver")))
    return out


def _monitoring():
    if getattr(sys, "monitoring", None) is None:
        raise NotApplicable("sys.monitoring needs Python 3.12+")
    return sys.monitoring


# -- parent side: the table ------------------------------------------------

def cells_of(runs):
    """{(workload, tool): cell}: median seconds and µs added per iteration over the round's untraced run."""
    base = dict(((r["workload"], r["round"]), r) for r in runs if r["tool"] == "none" and r.get("seconds"))
    cells = {}
    for key in set((r["workload"], r["tool"]) for r in runs):
        mine = [r for r in runs if (r["workload"], r["tool"]) == key]
        good = [r for r in mine if r.get("seconds") is not None and (key[0], r["round"]) in base]
        cell = {"rounds": len(good)}
        reasons = [r.get("not_applicable") for r in mine if r.get("not_applicable")]
        if reasons:
            cell["na"] = reasons[0]
        elif not good:
            cell["error"] = next((r["error"] for r in mine if r.get("error")), "not run")
        else:
            cell["seconds"] = median([r["seconds"] for r in good])
            cell["us"] = median([(r["seconds"] - base[(key[0], r["round"])]["seconds"]) / r["n"] * 1e6
                                 for r in good])
            cell["hits"] = good[0].get("hits")
            cell["records"] = good[0].get("records")
        cells[key] = cell
    return cells


def _same_records_text(cells, wl):
    """Whether both drivers recorded the same lines: records and line hits per depth."""
    parts = []
    for w in wl:
        seen = []
        for tool in ("monitoring", "settrace"):
            cell = cells.get((w["name"], tool), {})
            if cell.get("records") is not None:
                seen.append("%s %d records, {:,} hits".format(cell["hits"]) % (tool, cell["records"]))
        if seen:
            same = len(seen) == 2 and len(set(s.split(" ", 1)[1] for s in seen)) == 1
            parts.append("%s: %s%s" % (w["title"], "; ".join(seen), "" if len(seen) < 2 or same
                                       else " (**DIFFERENT**)"))
    return "Lines recorded (the result's records and the sum of their hits): %s." % (
        " / ".join(parts) if parts else "none")


def markdown(group, data, notes):
    runs = group["runs"]
    cells = cells_of(runs)
    wl = group["workloads"]
    n = group.get("n") or ITERATIONS
    lines = []
    add = lines.append
    add("**Call-heavy code** (issue #8): `calls(n)` runs `total += mid(i)`, `mid` returns `leaf(x) * 2`, "
        "n = {:,}; `calls` is level 1, `mid` 2, `leaf` 3. Seconds per run and microseconds added per "
        "iteration over the untraced run of the same round, medians:".format(n))
    add("")
    header = ["tool"]
    for w in wl:
        header += ["%s, s" % w["title"], "%s, µs per iteration" % w["title"]]
    add("| " + " | ".join(header) + " |")
    add("| --- |" + " ---: |" * (len(header) - 1))
    for tool in group["tools"]:
        row = [tool["label"]]
        for w in wl:
            cell = cells.get((w["name"], tool["name"]), {})
            if "na" in cell:
                row += ["n/a " + notes.ref("%s: %s" % (tool["name"], cell["na"])), ""]
            elif "error" in cell:
                row += ["failed " + notes.ref("%s on %s: %s" % (tool["name"], w["name"], cell["error"])), ""]
            else:
                row += ["%.3f" % cell["seconds"], "-" if tool["name"] == "none" else "%.2f" % cell["us"]]
        add("| " + " | ".join(row) + " |")
    add("")
    add(_same_records_text(cells, wl))
    add("")
    targets = []
    for w in wl:
        mon = cells.get((w["name"], "monitoring"), {}).get("us")
        st = cells.get((w["name"], "settrace"), {}).get("us")
        if mon is not None and st:
            targets.append(("%s: sys.monitoring driver / settrace driver, µs added per iteration" % w["title"],
                            "%.2fx" % (mon / st), "<= 1x", mon <= st))
    if targets:
        add("Against issue #8's target:")
        add("")
        add("| measure | value | target | met |")
        add("| --- | ---: | ---: | --- |")
        for label, value, target, met in targets:
            add("| %s | %s | %s | %s |" % (label, value, target, "yes" if met else "**no**"))
        add("")
    return "\n".join(lines)
