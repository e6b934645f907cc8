"""Fixed cost of a traced block, phase by phase in one process (issue #8).

Standalone: ``python benchmarks/block_phases.py [--phases 4] [--n 200] [--keep]``
with mempulse installed.  After one warm-up block, runs ``--phases`` groups
of ``--n`` blocks of ``with mempulse.cMemoryUsageTracer(cb, 1):`` around the
fixed-cost group's three-line handler and prints, per group, microseconds
per block and minor page faults per block.  ``--keep`` keeps every result
alive (as the harness's fixed-cost group does); without it each result is
dropped at once (as a service's callback that logs and forgets does).

The harness (benchmarks/fixed_cost.py) times the first 200 blocks of a
fresh process; this shows how much of that is the first blocks, and how
much is keeping the results.
"""
import argparse
import resource
import time

import mempulse


def handler(request):
    key = request * 2
    values = [key] * 4
    return len(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phases", type=int, default=4)
    parser.add_argument("--n", type=int, default=200, help="blocks per phase")
    parser.add_argument("--keep", action="store_true", help="keep every result alive")
    args = parser.parse_args()
    results = []
    with mempulse.cMemoryUsageTracer(results.append, 1):
        handler(0)
    del results[:]
    print("blocks of %d, results %s" % (args.n, "kept" if args.keep else "dropped"))
    for phase in range(args.phases):
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        for i in range(args.n):
            with mempulse.cMemoryUsageTracer(results.append, 1):
                handler(i)
            if not args.keep:
                del results[:]
        spent = time.perf_counter() - start
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        print("phase %d: %.1f us per block, %.2f minor faults per block"
              % (phase + 1, spent / args.n * 1e6, faults / float(args.n)))


if __name__ == "__main__":
    main()
