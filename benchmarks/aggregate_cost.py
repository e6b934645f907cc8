"""Cost per call of aggregation (issue #12 item 2): a 10-line handler called 1e6 times.

Standalone: ``python benchmarks/aggregate_cost.py [--n 1000000] [--per-call]``
with mempulse installed.  Times, one after the other in this process, the
same handler called ``--n`` times:

- plain: the undecorated function;
- aggregated: decorated with ``mempulse.Profile().trace`` (what
  ``@mempulse.profile(aggregate=True)`` does): each call traced, its
  records merged into the profile in C;
- per-call (``--per-call``): ``@mempulse.profile(callback=...)``, a result
  built for every call and dropped, for comparison.

Prints a table: total seconds, microseconds per call, microseconds added
per call over the plain call; then the profile's calls, rows and the C
accumulator's size (it must not grow with the calls).
"""
import argparse
import sys
import time

import mempulse


def handler(n):
    a = [0] * n
    b = sum(a)
    c = str(b)
    d = len(c)
    e = a[:2]
    f = (d, e)
    g = list(f)
    h = tuple(g)
    i = {"h": h}
    return i


def timed(function, n):
    start = time.perf_counter() if hasattr(time, "perf_counter") else time.time()
    for _ in range(n):
        function(8)
    end = time.perf_counter() if hasattr(time, "perf_counter") else time.time()
    return end - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000000, help="calls per variant (default 1e6)")
    parser.add_argument("--per-call", action="store_true", help="also time @profile with a result per call")
    options = parser.parse_args(argv)
    n = options.n

    prof = mempulse.Profile(depth=1)
    aggregated = prof.trace(handler)
    variants = [("plain call", handler), ("aggregated (Profile.trace)", aggregated)]
    if options.per_call:
        variants.append(("per-call result (@profile(callback=...))", mempulse.profile(callback=lambda r: None)(handler)))
    for _, function in variants:  # warm-up: the core loaded, the meter's files opened
        timed(function, 100)
    prof.reset()

    rows = []
    for name, function in variants:
        rows.append((name, timed(function, n)))
    plain = rows[0][1]
    driver = prof.result().metadata.get("driver", "?")
    print(
        "%s, %s driver, %s calls of a 10-line handler"
        % (mempulse.__version__ and sys.version.split()[0], driver, "{:,}".format(n))
    )
    print("")
    print("| variant | total s | µs per call | µs added per call |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds in rows:
        added = "-" if seconds is plain else "%.1f" % ((seconds - plain) / n * 1e6)
        print("| %s | %.2f | %.2f | %s |" % (name, seconds, seconds / n * 1e6, added))
    result = prof.result()
    print("")
    print(
        "profile: %s calls merged, %d rows, C accumulator %s bytes"
        % ("{:,}".format(result.metadata["calls"]), len(result), "{:,}".format(mempulse._core.lib.mp_footprint(prof._c)))
    )


if __name__ == "__main__":
    main()
