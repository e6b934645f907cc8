"""Render a run's raw JSON as the Markdown table and the PNG chart.

    python benchmarks/report.py benchmarks/results/results-3.11.json [--readme README.md]

Writes results-X.Y.md and results-X.Y.png next to the JSON; with --readme,
replaces the part of README.md between the ``benchmarks:begin`` and
``benchmarks:end`` markers with the table and the picture.  run.py calls it;
run it by hand to re-render without re-measuring (needs matplotlib for the
chart: the benchmark venv has it).
"""
from __future__ import print_function

import argparse
import io
import json
import os
import re

import groups
import summary

BEGIN = "<!-- benchmarks:begin (python benchmarks/run.py rewrites this part) -->"
END = "<!-- benchmarks:end -->"


def _fmt_ns(value):
    if value is None:
        return "-"
    if abs(value) >= 10000:
        return "{:,.0f}".format(value)
    return "%.0f" % value if abs(value) >= 10 else "%.1f" % value


def _fmt_overhead(value):
    if value is None:
        return "-"
    pct = value * 100
    return "{:+,.0f}%".format(pct) if abs(pct) >= 10 else "%+.1f%%" % pct


def gib(n):
    return "%.2f GiB" % (n / float(1 << 30)) if n >= 1 << 30 else "%.0f MiB" % (n / float(1 << 20))


class Notes(object):
    """Numbered footnotes for failures and scaled runs."""

    def __init__(self):
        self.items = []

    def ref(self, text):
        if text not in self.items:
            self.items.append(text)
        return "[%d]" % (self.items.index(text) + 1)


def _status_text(cell, tool, workload, notes):
    if cell.status == "unavailable":
        return "not installable " + notes.ref("%s: %s" % (tool, cell.reason))
    if cell.status == "n/a":
        return "n/a " + notes.ref("%s: %s" % (tool, cell.reason))
    if cell.status == "failed":
        return "failed " + notes.ref("%s on %s: %s" % (tool, workload, cell.reason))
    return None


def markdown(data, cells):
    workloads = data["workloads"]
    m = data["machine"]
    cfg = data["config"]
    versions = data.get("versions", {})
    notes = Notes()
    lines = []
    add = lines.append
    add("### CPython %s, %s" % (data["python"], m["date"]))
    add("")
    add("Machine: %s, %s cores, %s, %s GiB RAM, transparent huge pages `%s`, load average %s at the start. "
        "mempulse %s (commit %s), %s; %d interleaved rounds, each run a fresh process, medians. "
        "Command: `%s`%s."
        % (m["cpu"], m["cores"], m["kernel"], m["memory_gib"], m.get("thp"), m.get("load_average"),
           versions.get("mempulse", "?"), m.get("commit") or "?",
           ", ".join("%s %s" % (k, versions[k]) for k in sorted(versions) if k != "mempulse"),
           cfg["rounds"], cfg["command"], " (a quick development run: smaller workloads)" if cfg["quick"] else ""))
    add("")
    if workloads:
        _original(data, cells, notes, add)
    for name in groups.NAMES:
        group = data.get("groups", {}).get(name)
        if group is not None:
            if lines[-1] != "":
                add("")
            add(groups.module(name).markdown(group, data, notes).strip("\n"))
    if notes.items:
        add("")
        for i, text in enumerate(notes.items, 1):
            add("%d. %s" % (i, text.replace("|", "\\|")))
    return "\n".join(lines) + "\n"


def _original(data, cells, notes, add):
    """The loop and numpy groups: their tables, noise, ratios against issue #3's targets."""
    tools = data["tools"]
    workloads = data["workloads"]
    cfg = data["config"]
    rss = summary.median_rss(data)
    loops = [w for w in workloads if w["line_heavy"]]
    if loops:
        first = data["events"].get(str(cfg["n"]))
        add("**Line-heavy loop** `for i in range(n): s += i`, n = {:,} ({:,} line events per run, counted by a "
            "tracer). Nanoseconds each tool adds per line event over the same loop run untraced in the same "
            "process just before (the machine's speed moves in phases of seconds), and its overhead on (b):".format(cfg["n"], first or 0))
        add("")
        header = ["tool"] + ["%s, RSS %s" % (w["title"].split(" ")[0], gib(rss.get(w["name"], 0))) for w in loops]
        header.append("overhead on (b)" if any(w["name"] == "loop" for w in loops) else "overhead")
        add("| " + " | ".join(header) + " |")
        add("| --- |" + " ---: |" * (len(header) - 1))
        for tool in tools:
            name = tool["name"]
            row = [tool["label"]]
            for w in loops:
                cell = cells[w["name"]][name]
                text = _status_text(cell, name, w["name"], notes)
                if text is None:
                    if name == "none":
                        text = "(%.1f ns per event)" % (cell.seconds / cell.events * 1e9)
                    else:
                        text = _fmt_ns(cell.ns_per_event)
                        if cell.scaled:
                            text += " " + notes.ref(
                                "%s: too slow for the full loop within the %.1f s budget per run; ran n = %s "
                                "and is compared per line event with the untraced time scaled to as many "
                                "events; its overhead is extrapolated to the full n"
                                % (name, cfg["budget"], "{:,}".format(cell.n)))
                    if cell.status == "partial":
                        text += " " + notes.ref("%s on %s: %s" % (name, w["name"], cell.reason))
                row.append(text)
            ref = cells.get("loop", cells[loops[0]["name"]])[name]
            row.append("-" if name == "none" else _fmt_overhead(ref.overhead))
            add("| " + " | ".join(row) + " |")
        add("")
    if any(w["name"] == "numpy" for w in workloads):
        add("**(a) The original README's numpy workload** (lists, 300k uuid strings, a numpy CPU-bound loop, "
            "an 800 MB array reduced to a mean, gc, nested allocations), traced at depth 1:")
        add("")
        add("| tool | time (s) | overhead | overhead, lowest..highest round |")
        add("| --- | ---: | ---: | ---: |")
        for tool in tools:
            cell = cells["numpy"][tool["name"]]
            text = _status_text(cell, tool["name"], "numpy", notes)
            if text is not None:
                add("| %s | %s | | |" % (tool["label"], text))
                continue
            extra = " " + notes.ref("%s on numpy: %s" % (tool["name"], cell.reason)) if cell.status == "partial" else ""
            spread = "-" if tool["name"] == "none" or cell.overhead_range is None else "%s..%s" % tuple(
                _fmt_overhead(x) for x in cell.overhead_range)
            add("| %s | %.2f%s | %s | %s |" % (tool["label"], cell.seconds, extra,
                                               "-" if tool["name"] == "none" else _fmt_overhead(cell.overhead),
                                               spread))
        add("")
    add(_noise(data))
    add("")
    ratios = summary.key_ratios(cells, data["python"])
    if ratios:
        add("**Against issue #3's targets** (ratios of the medians above):")
        add("")
        add("| measure | value | target | met |")
        add("| --- | ---: | ---: | --- |")
        for label, value, target, met in ratios:
            add("| %s | %s | %s | %s |" % (label, value, target, {True: "yes", False: "**no**", None: "-"}[met]))
        add("")
    add("The clock covers the tool's start and stop and its result: mempulse's callback formats the table, "
        "memory_profiler formats its report, memray writes its capture file, tracemalloc is started and "
        "stopped (no snapshot); scalene profiles the whole process from its CLI and the workload times "
        "itself inside. The no-op tracers are the floor for a tracer of that kind: a settrace local "
        "trace function, or a sys.monitoring LINE callback, on the workload's code only, doing nothing.")


def _noise(data):
    """How much the untraced runs of each workload varied between rounds."""
    parts = []
    for w in data["workloads"]:
        times = [r["seconds"] for r in data["runs"]
                 if r["workload"] == w["name"] and r["tool"] == "none" and r.get("seconds")]
        if len(times) > 1:
            parts.append("%s %.2f..%.2f s" % (w["title"].split(" ")[0], min(times), max(times)))
    if not parts:
        return "(One round: no measure of the noise between rounds.)"
    return ("Noise: the untraced runs took %s across rounds (load average %s at the start); "
            "a figure is only as good as that spread." % ("; ".join(parts), data["machine"].get("load_average")))


def update_readme(readme, md_text, png_name, results_dir, version):
    """Put this interpreter's table and chart between the README's markers.

    The marked part holds one block per interpreter version (a
    ``<!-- results X.Y -->`` line starts each), in version order; a run
    replaces its own version's block and leaves the others.
    """
    with io.open(readme, encoding="utf-8") as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        raise SystemExit("%s has no %s ... %s markers" % (readme, BEGIN, END))
    head, rest = text.split(BEGIN, 1)
    inside, tail = rest.split(END, 1)
    parts = re.split(r"(?m)^<!-- results (\S+) -->\n", inside)[1:]  # version, block, ...
    blocks = dict(zip(parts[0::2], parts[1::2]))
    rel = os.path.relpath(results_dir, os.path.dirname(os.path.abspath(readme)))
    picture = ""
    if os.path.exists(os.path.join(results_dir, png_name)):
        picture = "\n![benchmark chart, CPython %s](%s/%s)\n" % (version, rel, png_name)
    blocks[version] = "%s%s\n" % (md_text, picture)

    def order(v):
        return [int(x) if x.isdigit() else x for x in v.split(".")]

    body = "".join("<!-- results %s -->\n%s" % (v, blocks[v]) for v in sorted(blocks, key=order))
    with io.open(readme, "w", encoding="utf-8") as f:
        f.write(head + BEGIN + "\n" + body + END + tail)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", help="results-X.Y.json written by run.py")
    parser.add_argument("--readme", help="README.md to update between the markers")
    args = parser.parse_args()
    with open(args.raw) as f:
        data = json.load(f)
    cells = summary.summarize(data, [t["name"] for t in data["tools"]], data["workloads"])
    base = os.path.splitext(args.raw)[0]
    md_text = markdown(data, cells)
    with io.open(base + ".md", "w", encoding="utf-8") as f:
        f.write(md_text)
    print(md_text)
    if not data["workloads"]:
        print("no chart: the loop and numpy groups were not run")
        return _finish(args, data, md_text, base)
    try:
        import chart
    except ImportError as e:  # matplotlib missing: the table still stands
        print("no chart: %s" % e)
    else:
        chart.render(data, cells, base + ".png")
        print("wrote %s.md and %s.png" % (base, base))
    _finish(args, data, md_text, base)


def _finish(args, data, md_text, base):
    if args.readme:
        version = ".".join(data["python"].split(".")[:2])
        update_readme(args.readme, md_text, os.path.basename(base) + ".png",
                      os.path.dirname(os.path.abspath(args.raw)), version)
        print("updated %s" % args.readme)


if __name__ == "__main__":
    main()
