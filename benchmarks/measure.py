"""One measurement, in a fresh process: run.py starts this once per run.

    python benchmarks/measure.py TOOL WORKLOAD --n N --scale S --out FILE
    python benchmarks/measure.py count WORKLOAD --n N --out FILE
    MEMPULSE_BENCH_ARGV='["scalene", "loop", ...]' python -m scalene run measure.py

Makes the workload's resident memory, then times the workload under the
tool (tools.py) and writes one JSON object to FILE (stdout belongs to the
tools: scalene and memory_profiler print there).  ``count`` counts the
workload frame's line events instead, with settrace and, on 3.12+,
sys.monitoring.
"""
from __future__ import print_function

import argparse
import json
import os
import platform
import sys

import tools
import workloads

ARGV_VARIABLE = "MEMPULSE_BENCH_ARGV"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("tool", choices=sorted(tools.BY_NAME) + ["count"])
    parser.add_argument("workload", choices=sorted(workloads.BY_NAME))
    parser.add_argument("--n", type=int, default=0, help="loop iterations (line-heavy workloads)")
    parser.add_argument("--scale", type=float, default=1.0, help="numpy workload size factor")
    parser.add_argument("--resident", type=int, default=None, help="override the workload's resident bytes")
    parser.add_argument("--out", required=True)
    # Under scalene the arguments come in the environment: its command line
    # cannot pass options through to the program (scalene 2.4).
    argv = sys.argv[1:] or json.loads(os.environ.get(ARGV_VARIABLE, "[]"))
    args = parser.parse_args(argv)

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
        try:
            seconds, note = tools.BY_NAME[args.tool].adapter(workload.function, call_args)
        except tools.NotApplicable as e:
            out["not_applicable"] = str(e)
        else:
            out["seconds"] = seconds
            out["note"] = note
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    sys.exit(main())
