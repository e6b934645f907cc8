"""Benchmark mempulse against the other memory profilers: one command.

    python benchmarks/run.py                 # CPython 3.11 (pyenv), 5 rounds, every group, ~16 min
    python benchmarks/run.py --python 3.13   # or a path to an interpreter
    python benchmarks/run.py --quick         # a 2-minute end-to-end check of the harness
    python benchmarks/run.py --only fixed,calls,cache --rounds 3   # some groups (groups.py)

Makes build/bench/venv-X.Y with mempulse's wheel built from this tree and
the peers from PyPI (environment.py), counts the line events of the loop
workloads, sizes each tool's loop runs to a time budget, then runs every
workload under every tool (tools.py) in interleaved rounds, each run in a
fresh process (measure.py); then the other groups (groups.py: fixed cost
per block, call-heavy depth, cache-filling attribution), the same way, in
the same rounds.  A full run (every group, tool and workload, 5 rounds or
more) writes benchmarks/results/results-X.Y.{json,md,png} and puts the
tables and chart into README.md (report.py) in place of the previous run's
on the same interpreter version; any other run writes under
build/bench/quick (--quick) or build/bench/partial.
Not a test: nothing in CI runs it.
"""
from __future__ import print_function

import argparse
import json
import os
import random
import subprocess
import sys
import time

import environment
import groups
import machine
import tools
import workloads

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MEASURE = os.path.join(HERE, "measure.py")
REPORT = os.path.join(HERE, "report.py")
WORK = os.path.join(environment.BUILD, "work")

# What a tool needs installed beyond mempulse.
NEEDS = {"MemoryUsageTracer": "psutil", "memory_profiler": "memory_profiler",
         "memray": "memray", "scalene": "scalene"}
RUN_TIMEOUT = 1800  # seconds; a run that takes longer is recorded as failed


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="3.11", help="X.Y (pyenv) or a path; default 3.11")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5, --quick 1)")
    parser.add_argument("--quick", action="store_true",
                        help="short development run: smaller workloads, 256 MiB instead of 2 GiB, "
                             "results under build/bench/quick, README untouched")
    parser.add_argument("--only", help="comma-separated groups to run (default all): " + ",".join(groups.NAMES))
    parser.add_argument("--tools", help="loop and numpy groups: comma-separated subset of: "
                        + ",".join(t.name for t in tools.TOOLS))
    parser.add_argument("--workloads", help="loop and numpy groups: comma-separated subset of: "
                        + ",".join(w.name for w in workloads.WORKLOADS))
    parser.add_argument("--n", type=int, default=None, help="loop iterations (default 2,000,000; --quick 200,000)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds one loop run may take; slower tools get fewer iterations "
                             "and are compared per line event (default 3; --quick 0.5)")
    parser.add_argument("--cap", type=float, default=None,
                        help="a tool whose run took longer than this many seconds is not run again in "
                             "later rounds; the table says so (default 60; --quick 20)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the per-round tool order")
    parser.add_argument("--fresh", action="store_true", help="recreate the benchmark venv")
    parser.add_argument("--no-readme", action="store_true", help="do not update README.md after a full run")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.n = args.n or (200000 if args.quick else 2000000)
    args.budget = args.budget or (0.5 if args.quick else 3.0)
    args.cap = args.cap or (20.0 if args.quick else 60.0)
    args.scale = 0.1 if args.quick else 1.0
    args.tool_names = _subset(args.tools, [t.name for t in tools.TOOLS], "tool", parser)
    if "none" not in args.tool_names:
        args.tool_names.insert(0, "none")  # every comparison is against it
    args.groups = _subset(args.only, list(groups.NAMES), "group", parser)
    args.workload_names = [w for w in _subset(args.workloads, [w.name for w in workloads.WORKLOADS], "workload",
                                              parser)
                           if _original_group(w) in args.groups]
    args.group_sizes = dict((g, GROUP_SIZES[g][1 if args.quick else 0]) for g in args.groups
                            if g not in groups.ORIGINAL)
    args.published = (not (args.quick or args.tools or args.workloads or args.only) and args.rounds >= 5)
    return args


# Per group: (n, budget) of a full run and of a --quick one.  fixed: blocks
# timed and the seconds a run may spend on them; calls and cache: iterations.
GROUP_SIZES = {"fixed": ((200, 1.0), (200, 0.5)), "calls": ((100000, 0), (20000, 0)),
               "cache": ((10000, 0), (2000, 0))}
QUICK_RESIDENT = 256 * workloads.MiB


def _original_group(workload_name):
    return "numpy" if workload_name == "numpy" else "loop"


def _subset(text, names, what, parser):
    if not text:
        return list(names)
    chosen = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in chosen if x not in names]
    if unknown:
        parser.error("unknown %s %s; choose from %s" % (what, ", ".join(unknown), ", ".join(names)))
    return [x for x in names if x in chosen]


class Runner(object):
    """Starts measure.py in a fresh process and reads its JSON."""

    def __init__(self, python, quick):
        self.python = python
        self.quick = quick
        if not os.path.isdir(WORK):
            os.makedirs(WORK)

    def run(self, tool, workload, n=0, scale=1.0, group=None, budget=None, extra_env=None, resident=0):
        """One run; ``group`` (with its workload's ``resident`` bytes) for a group of groups.py."""
        out_path = os.path.join(WORK, "measure.json")
        if os.path.exists(out_path):
            os.remove(out_path)
        argv = [tool, workload, "--n", str(n), "--scale", repr(scale), "--out", out_path]
        if group is None:
            resident = workloads.BY_NAME[workload].resident
        else:
            argv += ["--group", group, "--budget", repr(budget or 0)]
        if self.quick and resident > QUICK_RESIDENT:
            argv += ["--resident", str(QUICK_RESIDENT)]
        env = dict(os.environ)
        for name in ("PYTHONPATH", "PYTHONHOME", "MEMPULSE_CFFI", "MEMPULSE_DRIVER"):
            env.pop(name, None)
        env.update(extra_env or {})
        if tool == "scalene":
            command = [self.python, "-m", "scalene", "run", "-o", os.path.join(WORK, "scalene.json"), MEASURE]
            env["MEMPULSE_BENCH_ARGV"] = json.dumps(argv)
        else:
            command = [self.python, MEASURE] + argv
        started = time.time()
        proc = subprocess.Popen(command, cwd=WORK, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return {"error": "timed out after %d s" % RUN_TIMEOUT}
        result = {"wall": time.time() - started}
        lines = [x for x in stderr.decode("utf-8", "replace").splitlines() if x.strip()]
        reason = lines[-1].strip()[:300] if lines else "no output"
        if not os.path.exists(out_path):
            result["error"] = "exit %d: %s" % (proc.returncode, reason)
            return result
        if proc.returncode != 0:
            # The measurement was written, so it stands (scalene exits 1
            # after a run it found too short to profile); keep why.
            result["exit"] = "exit %d: %s" % (proc.returncode, reason)
        with open(out_path) as f:
            result.update(json.load(f))
        return result


def count_events(runner, ns, log):
    """Line events of the loop for each n, counted by a tracer (not assumed)."""
    events = {}
    for n in sorted(set(ns)):
        out = runner.run("count", "loop", n)
        if "error" in out:
            raise SystemExit("counting line events failed: %s" % out["error"])
        events[n] = out["settrace_events"]
        extra = ""
        if out.get("monitoring_events") is not None:
            extra = ", sys.monitoring: %d" % out["monitoring_events"]
            if out["monitoring_events"] != events[n]:
                extra += " (DIFFERENT)"
        log("  loop(%d): %d line events (settrace%s)" % (n, events[n], extra))
        events[str(n) + "-monitoring"] = out.get("monitoring_events")
    return events


def size_runs(runner, args, tool_names, loop_workloads, log):
    """{(tool, workload): n}: the full n, or fewer iterations for a slow tool.

    A calibration run per pair at n/500 bounds the cost per iteration from
    above (its fixed start-up cost included).  A tool that might exceed
    --budget at the full n gets a second, larger run, and n is cut to fit
    the budget at the marginal cost per iteration between the two, so that
    a fixed start-up cost alone does not cut its n.  Also finds the tools
    that do not apply here (no sys.monitoring before 3.12).
    """
    sizes, not_applicable = {}, {}
    small = max(args.n // 500, 1000)
    for workload in loop_workloads:
        for tool in tool_names:
            if tool == "none" or tool in not_applicable:
                sizes[(tool, workload)] = args.n
                continue
            first = runner.run(tool, workload, small)
            if first.get("not_applicable"):
                not_applicable[tool] = first["not_applicable"]
                continue
            n = args.n
            upper = (first.get("seconds") or 0) / small  # seconds per iteration, at most
            if upper * args.n > args.budget:
                larger = min(10 * small, int(args.budget / upper))
                per_iteration = upper
                if larger >= 2 * small:
                    second = runner.run(tool, workload, larger)
                    if second.get("seconds"):
                        per_iteration = max(second["seconds"] - first["seconds"], 0) / float(larger - small)
                if per_iteration * args.n > args.budget:
                    n = _round_down(max(int(args.budget / per_iteration), small))
                    log("  %s on %s: %.0f ns per iteration -> n = %d"
                        % (tool, workload, per_iteration * 1e9, n))
            sizes[(tool, workload)] = n
    # One n per tool over all the loop workloads: the 2 GiB / 50 MiB ratio
    # then compares runs of the same length.
    for tool in tool_names:
        fewest = min([sizes[(tool, w)] for w in loop_workloads if (tool, w) in sizes] or [args.n])
        for w in loop_workloads:
            if (tool, w) in sizes:
                sizes[(tool, w)] = fewest
    return sizes, not_applicable


def _round_down(n):
    digits = len(str(n)) - 2
    return n if digits <= 0 else n // 10 ** digits * 10 ** digits


def run_group_round(runner, name, group, round_, args, rng, log):
    """One round of a group of groups.py: each workload under each tool, tools shuffled."""
    module = groups.module(name)
    n, budget = args.group_sizes[name]
    for workload in module.WORKLOADS:
        order = [t for t in module.TOOLS if t.name not in group.get("unavailable", {})
                 and (t.max_rounds is None or round_ < t.max_rounds)]
        rng.shuffle(order)
        for tool in order:
            out = runner.run(tool.name, workload.name, n, group=name, budget=budget, extra_env=tool.env,
                             resident=workload.resident)
            record = {"round": round_, "workload": workload.name, "tool": tool.name, "n": n}
            record.update(out)
            group["runs"].append(record)
            log("round %d/%d %-11s %-18s %s" % (
                round_ + 1, args.rounds, workload.name, tool.name,
                "%.3f s" % out["seconds"] if out.get("seconds") is not None
                else out.get("error") or out.get("not_applicable")))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    begun = time.time()

    def log(message):
        print("[%5.0fs] %s" % (time.time() - begun, message))
        sys.stdout.flush()

    try:
        base = environment.find_python(args.python)
        env = environment.prepare(base, fresh=args.fresh, log=log)
    except environment.SetupError as e:
        raise SystemExit("benchmark setup failed: %s" % e)
    runner = Runner(env.python, args.quick)
    unavailable = {}
    for tool in args.tool_names:
        package = NEEDS.get(tool)
        if package in env.failed:
            unavailable[tool] = env.failed[package]
    tool_names = [t for t in args.tool_names if t not in unavailable]
    loop_workloads = [w for w in args.workload_names if workloads.BY_NAME[w].line_heavy]

    sizes, not_applicable, events = {}, {}, {}
    if loop_workloads:
        log("sizing the loop runs (budget %.1f s per run)" % args.budget)
        sizes, not_applicable = size_runs(runner, args, tool_names, loop_workloads, log)
        log("counting line events")
        events = count_events(runner, [n for (t, w), n in sizes.items()] + [args.n], log)
    group_data = {}
    for name in args.group_sizes:
        module = groups.module(name)
        group_data[name] = groups.to_json(module)
        group_data[name].update(n=args.group_sizes[name][0], budget=args.group_sizes[name][1], runs=[])
        for tool in module.TOOLS:
            if tool.package in env.failed:
                group_data[name].setdefault("unavailable", {})[tool.name] = env.failed[tool.package]

    runs = []
    capped = {}  # (tool, workload) -> seconds of the run that went over --cap
    rng = random.Random(args.seed)
    for round_ in range(args.rounds):
        for workload in args.workload_names:
            order = list(tool_names)
            rng.shuffle(order)  # a fixed seed: re-runs use the same orders
            for tool in order:
                if tool in not_applicable:
                    runs.append({"round": round_, "workload": workload, "tool": tool,
                                 "not_applicable": not_applicable[tool]})
                    continue
                if (tool, workload) in capped:
                    runs.append({"round": round_, "workload": workload, "tool": tool,
                                 "capped": capped[(tool, workload)]})
                    continue
                spec = workloads.BY_NAME[workload]
                n = sizes.get((tool, workload), args.n) if spec.line_heavy else 0
                out = runner.run(tool, workload, n, args.scale)
                record = {"round": round_, "workload": workload, "tool": tool}
                record.update(out)
                if spec.line_heavy:
                    record["n"] = n
                    record["events"] = events[n]
                runs.append(record)
                if (out.get("seconds") or 0) > args.cap:
                    capped[(tool, workload)] = out["seconds"]
                log("round %d/%d %-8s %-18s %s" % (
                    round_ + 1, args.rounds, workload, tool,
                    "%.3f s" % out["seconds"] if out.get("seconds") is not None
                    else out.get("error") or out.get("not_applicable")))
        for name in args.group_sizes:
            run_group_round(runner, name, group_data[name], round_, args, rng, log)

    data = {
        "machine": machine.describe(ROOT),
        "python": env.full,
        "versions": env.versions,
        "config": {"rounds": args.rounds, "n": args.n, "scale": args.scale, "budget": args.budget, "cap": args.cap,
                   "quick": args.quick, "seed": args.seed, "published": args.published,
                   "command": " ".join(["python benchmarks/run.py"] + (sys.argv[1:] if argv is None else argv))},
        "tools": [{"name": t.name, "label": t.label} for t in tools.TOOLS if t.name in args.tool_names],
        "workloads": [{"name": w.name, "title": w.title, "line_heavy": w.line_heavy, "resident": w.resident}
                      for w in workloads.WORKLOADS if w.name in args.workload_names],
        "unavailable": unavailable,
        "events": dict((str(k), v) for k, v in events.items()),
        "runs": runs,
        "groups": group_data,
        "duration_s": time.time() - begun,
    }
    # Only a full run replaces the published results; a partial one would
    # otherwise overwrite them with a subset.
    out_dir = (os.path.join(HERE, "results") if args.published
               else os.path.join(environment.BUILD, "quick" if args.quick else "partial"))
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    raw = os.path.join(out_dir, "results-%s.json" % env.short)
    with open(raw, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    command = [env.python, REPORT, raw]
    if args.published and not args.no_readme:
        command += ["--readme", os.path.join(ROOT, "README.md")]
    subprocess.check_call(command)
    log("done in %.0f s; raw runs in %s" % (time.time() - begun, raw))


if __name__ == "__main__":
    main()
