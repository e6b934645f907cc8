"""One measurement, in a fresh process: run.py starts this once per run.

    python benchmarks/measure.py TOOL WORKLOAD --n N --scale S --out FILE
    python benchmarks/measure.py count WORKLOAD --n N --out FILE
    python benchmarks/measure.py TOOL WORKLOAD --group fixed|calls|cache --n N --budget S --out FILE
    MEMPULSE_BENCH_ARGV='["scalene", "loop", ...]' python -m scalene run measure.py

Makes the workload's resident memory, then times the workload under the
tool (tools.py) and writes one JSON object to FILE (stdout belongs to the
tools: scalene and memory_profiler print there).  ``count`` counts the
workload frame's line events instead, with settrace and, on 3.12+,
sys.monitoring.  With ``--group``, the workload and the tool are those of
that group's module (groups.py), which does the measuring.
"""
from __future__ import print_function

import argparse
import json
import os
import platform
import sys

import groups
import tools
import workloads

ARGV_VARIABLE = "MEMPULSE_BENCH_ARGV"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("tool")
    parser.add_argument("workload")
    parser.add_argument("--group", default=None, help="a group other than loop/numpy (groups.py)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds a group run may spend (fixed)")
    parser.add_argument("--n", type=int, default=0, help="loop iterations (line-heavy workloads)")
    parser.add_argument("--scale", type=float, default=1.0, help="numpy workload size factor")
    parser.add_argument("--resident", type=int, default=None, help="override the workload's resident bytes")
    parser.add_argument("--out", required=True)
    # Under scalene the arguments come in the environment: its command line
    # cannot pass options through to the program (scalene 2.4).
    argv = sys.argv[1:] or json.loads(os.environ.get(ARGV_VARIABLE, "[]"))
    args = parser.parse_args(argv)
    if args.group:
        return measure_group(args)
    if args.tool not in tools.BY_NAME and args.tool != "count" or args.workload not in workloads.BY_NAME:
        parser.error("unknown tool %r or workload %r" % (args.tool, args.workload))

    workload = workloads.BY_NAME[args.workload]
    call_args = (args.n,) if workload.line_heavy else (args.scale,)
    resident = workload.resident if args.resident is None else args.resident
    keep = workloads.make_resident(resident)  # noqa: F841 - kept alive on purpose
    out = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "rss_before": workloads.rss_bytes(),
    }
    if args.tool == "count":
        out["settrace_events"] = tools.count_line_events(workload.function, call_args)
        out["monitoring_events"] = tools.count_monitoring_events(workload.function, call_args)
    else:
        tool = tools.BY_NAME[args.tool]
        if workload.line_heavy and tool.line_events and tool.name != "none":
            # This process's own untraced time, just before: the machine's
            # speed moves in phases of seconds, so the untraced run of the
            # round (another process) can differ by as much as a tracer costs.
            out["untraced_seconds"] = tools.untraced(workload.function, call_args)[0]
        try:
            seconds, note = tool.adapter(workload.function, call_args)
        except tools.NotApplicable as e:
            out["not_applicable"] = str(e)
        else:
            out["seconds"] = seconds
            out["note"] = note
    with open(args.out, "w") as f:
        json.dump(out, f)


def measure_group(args):
    module = groups.module(args.group)
    workload = dict((w.name, w) for w in module.WORKLOADS)[args.workload]
    if args.tool not in [t.name for t in module.TOOLS]:
        raise SystemExit("unknown tool %r in group %s" % (args.tool, args.group))
    resident = workload.resident if args.resident is None else args.resident
    keep = workloads.make_resident(resident)  # noqa: F841 - kept alive on purpose
    out = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "rss_before": workloads.rss_bytes(),
    }
    try:
        out.update(module.measure(args.tool, workload, args, tools.clock))
    except tools.NotApplicable as e:
        out["not_applicable"] = str(e)
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    sys.exit(main())
