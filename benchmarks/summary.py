"""From raw runs to medians, overheads, ns per line event and the key ratios.

Every figure compares a run with the untraced run of the same workload in
the same round, then takes the median over rounds, so a slow patch of the
machine moves both sides of one comparison rather than one tool's numbers.

For the line-heavy workloads, ``ns per line event`` is
(t_tool - t_untraced * events_tool / events_untraced) / events_tool: a tool
whose runs were given fewer iterations (to keep a run within the time
budget) is compared with the untraced time scaled to the same event count,
and its overhead is extrapolated to the full run.  Where the run also
timed the same loop untraced in its own process just before
(``untraced_seconds``, measure.py), that is the baseline instead: this
machine's speed moves in phases of seconds, which another process's run
does not share.
"""


def median(values):
    values = sorted(values)
    if not values:
        return None
    middle = len(values) // 2
    if len(values) % 2:
        return values[middle]
    return (values[middle - 1] + values[middle]) / 2.0


class Cell(object):
    """One tool on one workload."""

    def __init__(self, status, reason=None):
        self.status = status  # ok | failed | n/a | unavailable
        self.reason = reason
        self.seconds = self.overhead = self.ns_per_event = None
        self.n = self.events = None
        self.scaled = False
        self.overhead_range = None  # (lowest, highest) over rounds
        self.rounds = 0


def summarize(data, tool_names, workload_specs):
    """{workload: {tool: Cell}} for every pair, failures included."""
    cells = {}
    for workload in workload_specs:
        name = workload["name"]
        runs = [r for r in data["runs"] if r["workload"] == name]
        base = dict((r["round"], r) for r in runs if r["tool"] == "none" and r.get("seconds"))
        cells[name] = dict((tool, _cell(tool, runs, base, workload, data)) for tool in tool_names)
    return cells


def _cell(tool, runs, base, workload, data):
    if tool in data.get("unavailable", {}):
        return Cell("unavailable", data["unavailable"][tool])
    mine = [r for r in runs if r["tool"] == tool]
    if not mine:
        return Cell("n/a", "not run")
    not_applicable = [r["not_applicable"] for r in mine if r.get("not_applicable")]
    if not_applicable:
        return Cell("n/a", not_applicable[0])
    good = [r for r in mine if r.get("seconds") is not None and r["round"] in base]
    errors = [r["error"] for r in mine if r.get("error")]
    if not good:
        return Cell("failed", errors[0] if errors else "no successful run")
    cell = Cell("ok", None)
    capped = [r["capped"] for r in mine if r.get("capped")]
    if errors:
        cell.status = "partial"
        cell.reason = "failed in %d of %d rounds: %s" % (len(errors), len(mine), errors[0])
    elif capped:
        cell.status = "partial"
        cell.reason = ("measured in %d of %d rounds only: a run took %.0f s, over the %.0f s cap"
                       % (len(good), len(mine), capped[0], data["config"].get("cap", 0)))
    cell.rounds = len(good)
    cell.seconds = median([r["seconds"] for r in good])
    cell.n = good[0].get("n")
    full_events = base[good[0]["round"]].get("events")
    cell.events = good[0].get("events")
    cell.scaled = bool(workload["line_heavy"] and cell.events != full_events)
    if not workload["line_heavy"]:
        ratios = [r["seconds"] / base[r["round"]]["seconds"] - 1 for r in good]
        cell.overhead = median(ratios)
        cell.overhead_range = (min(ratios), max(ratios))
        return cell
    added = []
    overhead = []
    for r in good:
        b = base[r["round"]]
        own = r.get("untraced_seconds")
        if own:
            ns = (r["seconds"] - own) / r["events"] * 1e9
            overhead.append(ns * 1e-9 * r["events"] / own)
        else:
            ns = (r["seconds"] - b["seconds"] * r["events"] / float(b["events"])) / r["events"] * 1e9
            overhead.append(ns * 1e-9 * b["events"] / b["seconds"])
        added.append(ns)
    cell.ns_per_event = median(added)
    cell.overhead = median(overhead)
    return cell


def _ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def median_rss(data):
    """{workload: median RSS at the start of its untraced runs, bytes}."""
    out = {}
    for w in data["workloads"]:
        values = [r["rss_before"] for r in data["runs"]
                  if r["workload"] == w["name"] and r["tool"] == "none" and r.get("rss_before")]
        out[w["name"]] = median(values) or 0
    return out


def key_ratios(cells, python_version):
    """The ratios issue #3 sets targets for: (label, value text, target, met).

    ``met`` is True/False, or None where a side is missing.
    """
    rows = []
    loop = cells.get("loop", {})

    def ns(tool, workload="loop"):
        cell = cells.get(workload, {}).get(tool)
        return cell.ns_per_event if cell is not None and cell.status in ("ok", "partial") else None

    c = ns("cMemoryUsageTracer")
    for floor, kind in (("noop-settrace", "settrace"), ("noop-monitoring", "sys.monitoring")):
        if floor in loop and loop[floor].status != "n/a":
            native = (kind == "sys.monitoring") == (tuple(int(x) for x in python_version.split(".")[:2]) >= (3, 12))
            label = "(b) cMemoryUsageTracer / no-op %s tracer, ns per line event%s" % (
                kind, " (same kind)" if native else "")
            value = _ratio(c, ns(floor))
            rows.append((label, value, "<= 3x" if native else "-", _check(value, 3.0) if native else None))
    if c is not None and python_version.startswith("3.11."):
        rows.append(("(b) cMemoryUsageTracer ns per line event on 3.11", c, "<= 130 ns", c <= 130))
    value = _ratio(ns("memory_profiler"), c)
    rows.append(("(b) memory_profiler / cMemoryUsageTracer, ns per line event", value, ">= 100x",
                None if value is None else value >= 100))
    value = _ratio(ns("MemoryUsageTracer"), c)
    rows.append(("(b) MemoryUsageTracer / cMemoryUsageTracer, ns per line event", value, "<= 3x", _check(value, 3.0)))
    for tool in ("cMemoryUsageTracer", "MemoryUsageTracer"):
        value = _ratio(ns(tool, "loop-2G"), ns(tool, "loop-50M"))
        rows.append(("(c) %s ns per line event, 2 GiB / 50 MiB resident" % tool, value, "<= 1.5x",
                    _check(value, 1.5)))
    numpy_cell = cells.get("numpy", {}).get("cMemoryUsageTracer")
    if numpy_cell is not None and numpy_cell.overhead is not None:
        rows.append(("(a) cMemoryUsageTracer overhead on the numpy workload", numpy_cell.overhead * 100,
                    "<= 5%", numpy_cell.overhead <= 0.05))
    units = {"x": "%.1fx", "ns": "%.0f ns", "%": "%+.1f%%"}
    out = []
    for label, value, target, met in rows:
        unit = "ns" if target.endswith("ns") else "%" if target.endswith("%") else "x"
        out.append((label, "-" if value is None else units[unit] % value, target, met))
    return out


def _check(value, limit):
    return None if value is None else value <= limit
