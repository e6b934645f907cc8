"""Python 3.12+: mempulse (on sys.monitoring) leaves sys.settrace alone.

So coverage.py, with its default core (a settrace tracer) or its
sys.monitoring core, and settrace debuggers see every line inside a traced
block, and mempulse's report is complete at the same time.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import line_of

import mempulse

pytestmark = pytest.mark.skipif(
    not hasattr(sys, "monitoring"), reason="mempulse uses sys.monitoring on Python 3.12+ only"
)


def work(n):
    total = 0  # X:first
    for i in range(n):
        total += i  # X:loop
    return total  # X:last


def test_a_settrace_tracer_keeps_seeing_lines_inside_the_block(tracer_class):
    seen = []

    def debugger(frame, event, arg):
        if event == "line" and frame.f_code is work.__code__:
            seen.append(frame.f_lineno)
        return debugger

    results = []
    sys.settrace(debugger)
    try:
        with tracer_class(results.append, 2):
            total = work(3)
        assert sys.gettrace() is debugger
    finally:
        sys.settrace(None)
    first, loop, last = line_of("X:first"), line_of("X:loop"), line_of("X:last")
    assert seen.count(loop) == 3 and first in seen and last in seen
    hits = dict((r.lineno, r.hits) for r in results[0] if r.function == "work")
    assert hits[first] == 1 and hits[loop] == 3 and hits[last] == 1
    assert total == 3


SCRIPT = """
import json, sys
import mempulse


def work(n):
    total = 0
    for i in range(n):
        total += i
    blob = b"x" * (8 << 20)
    return total + len(blob) // (8 << 20)


results = []
with mempulse.cMemoryUsageTracer(results.append, 2):
    a = work(4)
    b = a + 1
json.dump([[r.function, r.lineno, r.hits, r.increment] for r in results[0]], sys.stdout)
"""


@pytest.mark.parametrize("core", ["default", "sysmon"])
def test_coverage_and_mempulse_both_see_every_line(tmpdir, core):
    pytest.importorskip("coverage")
    script = tmpdir.join("traced.py")
    script.write(textwrap.dedent(SCRIPT))
    env = dict(os.environ)
    env.pop("COVERAGE_CORE", None)
    if core == "sysmon":
        env["COVERAGE_CORE"] = "sysmon"
    data = str(tmpdir.join(".coverage"))
    run = subprocess.run(
        [sys.executable, "-m", "coverage", "run", "--data-file", data, str(script)],
        cwd=str(tmpdir), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert run.returncode == 0, run.stderr
    report = str(tmpdir.join("cov.json"))
    subprocess.check_call(
        [sys.executable, "-m", "coverage", "json", "--data-file", data, "-o", report],
        cwd=str(tmpdir), env=env, stdout=subprocess.PIPE,
    )
    with open(report) as f:
        files = json.load(f)["files"]
    (measured,) = [v for k, v in files.items() if k.endswith("traced.py")]
    # coverage.py: every statement ran, inside the block and in work().
    assert measured["missing_lines"] == [], measured
    lines = SCRIPT.split("\n")
    number = dict((text.strip(), i) for i, text in enumerate(lines, 1) if text.strip())
    for text in ("total = 0", "total += i", "blob = b\"x\" * (8 << 20)", "a = work(4)", "b = a + 1"):
        assert number[text] in measured["executed_lines"], text
    # mempulse: every line of work() with its hits, the allocation on its line.
    rows = dict(((fn, lineno), (hits, inc)) for fn, lineno, hits, inc in json.loads(run.stdout))
    assert rows[("work", number["total += i"])][0] == 4
    assert rows[("work", number["total = 0"])][0] == 1
    assert rows[("work", number["blob = b\"x\" * (8 << 20)"])][1] >= 7 << 20
    assert rows[("<module>", number["a = work(4)"])][0] == 1
    assert rows[("<module>", number["b = a + 1"])][0] == 1
