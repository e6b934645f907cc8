"""Small repeated allocations are charged to the line that makes them (issue 9).

A loop allocating 1 KiB .. 1 MiB per iteration, with pages touched
(``bytearray``) or not (``bytes``, which calloc leaves untouched where the
memory is fresh), must charge its resident growth to the allocating line and
nothing to the lines around it; a loop that frees what it allocates must show
no phantom growth anywhere.  Each case runs in a fresh interpreter, so memory
freed by earlier tests cannot be reused and hide the growth.
"""
import json
import platform
import subprocess
import sys
import textwrap

import pytest

from conftest import HAVE_PSUTIL, MiB

# Every test here runs under each driver (sys.settrace; sys.monitoring on 3.12+).
pytestmark = pytest.mark.usefixtures("driver")

KiB = 1 << 10
SIZES = [KiB, 4 * KiB, 10 * KiB, 64 * KiB, 256 * KiB, MiB]
TOTAL = 32 * MiB
CPYTHON = platform.python_implementation() == "CPython"

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import mempulse

    try:
        range = xrange  # Python 2: range() would build the whole list on the for line
    except NameError:
        pass

    def fill(kept, n, make, size):
        misses = 0
        for i in range(n):  # L:for
            if kept[i] is not None:  # L:test
                continue
            value = make(size)  # L:alloc
            kept[i] = value  # L:store
            misses += 1  # L:count
        return misses

    def churn(n, make, size):
        total = 0
        for i in range(n):  # L:for
            value = make(size)  # L:alloc
            total += len(value)  # L:count
            del value  # L:free
        return total

    tracer = {"c": mempulse.cMemoryUsageTracer, "psutil": mempulse.MemoryUsageTracer}[sys.argv[1]]
    loop, kind, size = sys.argv[2], sys.argv[3], int(sys.argv[4])
    make = {"touched": bytearray, "untouched": bytes}[kind]
    n = max(32, min(20000, %(total)d // size))
    kept = [None] * n
    results = []
    with tracer(results.append, 2):
        if loop == "fill":
            fill(kept, n, make, size)
        else:
            churn(n, make, size)
    rows = [
        {"line": r.lineno, "function": r.function, "increment": r.increment, "hits": r.hits}
        for r in results[0] if r.function in ("fill", "churn")
    ]
    print(json.dumps({"n": n, "rows": rows}))
    """
) % {"total": TOTAL}


def _markers():
    return {
        number: text.split("# L:")[1].strip()
        for number, text in enumerate(SCRIPT.splitlines(), 1)
        if "# L:" in text
    }


def run_case(tmpdir, sampler, loop, kind, size):
    path = tmpdir.join("case.py")
    path.write(SCRIPT)
    out = subprocess.check_output([sys.executable, str(path), sampler, loop, kind, str(size)])
    data = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    markers = _markers()
    lines = {}
    for row in data["rows"]:
        name = markers.get(row["line"], "line %d" % row["line"])
        lines[(row["function"], name)] = row["increment"]
    return data["n"], lines


SAMPLERS = [
    "c",
    pytest.param("psutil", marks=pytest.mark.skipif(not HAVE_PSUTIL, reason="psutil is not installed")),
]


@pytest.mark.skipif(not CPYTHON, reason="PyPy: small objects live in a nursery; README states its bound")
@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize(
    "kind",
    [
        "touched",
        pytest.param(
            "untouched",
            marks=pytest.mark.skipif(sys.version_info[0] < 3, reason="Python 2's bytes(n) is str(n)"),
        ),
    ],
)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "%dKiB" % (s // KiB))
def test_the_allocating_line_gets_the_growth(tmpdir, sampler, kind, size):
    n, lines = run_case(tmpdir, sampler, "fill", kind, size)
    allocated = n * size
    alloc = lines[("fill", "alloc")]
    growth = sum(max(0, v) for v in lines.values())
    if kind == "touched":
        assert growth >= allocated * 0.8, lines
    # psutil at 1 KiB: its own readings' allocations (see below) take up to
    # ~13% of the growth with psutil 4.0 (the README states it).
    share = 0.85 if (sampler == "psutil" and size <= KiB) else 0.9
    if growth >= allocated * 0.25:
        assert alloc >= share * growth, lines
    # Lines that allocate nothing get (almost) nothing, whether the pages
    # were touched or not: never more than 3% of what the loop allocated.
    # psutil: its readings allocate Python objects of their own from the
    # pools the loop's objects use (up to ~7.5% seen at 1 KiB: 2.7, 3.6, and
    # 3.11 with psutil 4.0); the README states this bound.
    bound = 0.10 if (sampler == "psutil" and size <= KiB) else 0.03
    for (function, name), increment in lines.items():
        if name != "alloc":
            assert abs(increment) <= bound * allocated, (name, lines)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "%dKiB" % (s // KiB))
def test_allocate_and_free_every_iteration_shows_no_phantom_growth(tmpdir, sampler, size):
    n, lines = run_case(tmpdir, sampler, "churn", "touched", size)
    allocated = n * size
    # The allocating and the freeing line may each move memory (a block
    # mmapped and unmapped each time); the sum over the loop is about zero,
    # and the lines between them get nothing.
    # PyPy: its JIT compiles the loop and its collector runs at the loop's
    # header, which moves memory there whatever the loop allocates: about
    # a nursery (test-all sets PYPY_GC_NURSERY=4MB) and more (4.97 MB seen
    # at 1 KiB with psutil, once in a CI run).
    slack = 0 if CPYTHON else 6 * MiB
    for (function, name), increment in lines.items():
        if name not in ("alloc", "free"):
            bound = max(0.03 * allocated, 2 * size) + slack
            if CPYTHON:
                assert abs(increment) <= bound, (name, lines)
            else:
                # PyPy frees big blocks at a major collection, which may
                # run at any line: only growth there would be phantom.
                assert increment <= bound, (name, lines)
    if CPYTHON:  # PyPy frees at its next collection, not at ``del``
        total = sum(lines.values())
        assert abs(total) <= max(2 * size, 2 * MiB), lines
        assert abs(lines[("churn", "alloc")] + lines.get(("churn", "free"), 0)) <= max(2 * size, 2 * MiB), lines
