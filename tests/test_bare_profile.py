"""Bare ``@profile`` scripts (memory_profiler / kernprof style) under the command line, run for real."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

MiB = 1 << 20
BIN = os.path.dirname(sys.executable)
RUNNERS = {
    "python-m": [sys.executable, "-m", "mempulse"],
    "console": [os.path.join(BIN, "mempulse")],
}

# Written for memory_profiler: no import of profile.
MP_STYLE = """
import atexit
import mmap

KEEP = []


def helper():
    return [0] * 1000  # L:helper


@profile
def allocate(mib):
    m = mmap.mmap(-1, mib << 20)
    m.write(b"a" * (mib << 20))  # L:write
    helper()  # L:call-helper
    KEEP.append(m)


@profile(precision=4)
def tiny():
    return sum(range(100))  # L:tiny


def builtin_gone():
    b = __import__("builtins" if str is not bytes else "__builtin__")
    print("profile after run: %s" % hasattr(b, "profile"))


atexit.register(builtin_gone)
for _ in range(3):
    allocate(4)  # L:module-call
tiny()
print("program output")
"""

def write(tmpdir, name, source):
    path = tmpdir.join(name)
    path.write(textwrap.dedent(source).lstrip())
    return str(path)


def run(tmpdir, args, runner="python-m"):
    proc = subprocess.Popen(
        RUNNERS[runner] + list(args), cwd=str(tmpdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate()
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def line_in(path, marker):
    with open(path) as f:
        for number, text in enumerate(f, 1):
            if text.rstrip().endswith("# L:" + marker):
                return number
    raise LookupError(marker)


def tables(err):
    """{title: [row fields]} of the per-function tables on stderr."""
    found = {}
    current = None
    for line in err.splitlines():
        if line.startswith("mempulse: ") and " call" in line:
            current = found.setdefault(line, [])
        elif current is not None and ".py:" in line.split(" ")[0]:
            current.append(line.split())
    return found


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_memory_profiler_script_gets_one_aggregated_table_per_function(tmpdir, runner):
    script = write(tmpdir, "mp_style.py", MP_STYLE)
    status, out, err = run(tmpdir, ["mp_style.py"], runner)
    assert status == 0, err
    assert out.splitlines() == ["program output", "profile after run: False"]
    found = tables(err)
    assert sorted(found) == ["mempulse: allocate: 3 calls", "mempulse: tiny: 1 call"], err
    allocate = found["mempulse: allocate: 3 calls"]
    where = dict((row[0], row) for row in allocate)
    write_row = where["mp_style.py:%d" % line_in(script, "write")]
    assert write_row[5] == "3"  # hits over all calls
    assert int(write_row[-1].replace(",", "").replace("+", "")) >= 3 * 4 * MiB
    # Only the decorated functions, from their body (depth 1): no module-level
    # row, no helper row.
    assert "mp_style.py:%d" % line_in(script, "module-call") not in err
    assert "mp_style.py:%d" % line_in(script, "helper") not in where
    assert [r[0] for r in found["mempulse: tiny: 1 call"]] == ["mp_style.py:%d" % line_in(script, "tiny")]


def test_depth_counts_from_the_function_body_and_json_is_saved(tmpdir):
    script = write(tmpdir, "mp_style.py", MP_STYLE)
    status, out, err = run(tmpdir, ["--depth", "2", "--json", "run.json", "mp_style.py"])
    assert status == 0, err
    rows = tables(err)["mempulse: allocate: 3 calls"]
    assert "mp_style.py:%d" % line_in(script, "helper") in [r[0] for r in rows]
    with open(str(tmpdir.join("run.json"))) as f:
        data = json.load(f)
    functions = data["metadata"]["functions"]
    assert [(f["name"], f["calls"]) for f in functions] == [("allocate", 3), ("tiny", 1)]
    assert sum(f["rows"] for f in functions) == len(data["records"])
    assert data["metadata"]["command"] == ["mp_style.py"]


PLAIN = """
big = bytearray(8 << 20)  # L:plain
print("plain")
"""


def test_without_profile_the_whole_script_is_traced(tmpdir):
    script = write(tmpdir, "plain.py", PLAIN)
    status, out, err = run(tmpdir, ["plain.py"])
    assert status == 0, err
    assert "plain.py:%d" % line_in(script, "plain") in err
    assert " calls" not in err and "mempulse: " not in err


IMPORTED = """
import helpermod

helpermod.work()  # L:main-call
helpermod.work()
"""

HELPER_MODULE = """
@profile
def work():
    return bytearray(1 << 20)  # L:work
"""


def test_profile_applied_in_an_imported_module_switches_the_run(tmpdir):
    script = write(tmpdir, "main.py", IMPORTED)
    helper = write(tmpdir, "helpermod.py", HELPER_MODULE)
    status, out, err = run(tmpdir, ["main.py"])
    assert status == 0, err
    found = tables(err)
    assert list(found) == ["mempulse: helpermod.work: 2 calls"], err
    assert [r[0] for r in found["mempulse: helpermod.work: 2 calls"]] == ["helpermod.py:%d" % line_in(helper, "work")]
    # The whole-script trace was dropped.
    assert "main.py:%d" % line_in(script, "main-call") not in err


EXPLICIT = """
from mempulse import profile

@profile
def work():
    return [0] * 100  # L:explicit

work()
work()
"""


def test_imported_mempulse_profile_keeps_todays_behaviour(tmpdir):
    script = write(tmpdir, "explicit.py", EXPLICIT)
    status, out, err = run(tmpdir, ["--depth", "2", "explicit.py"])
    assert status == 0, err
    # One whole-script table (the function just runs inside it), no per-function title.
    assert err.count("Callsite") == 1, err
    assert " calls" not in err
    assert "explicit.py:%d" % line_in(script, "explicit") in err


OWN_PROFILE = """
def profile(f):
    return f

@profile
def work():
    return 1

work()  # L:own
"""


def test_a_script_defining_its_own_profile_is_traced_whole(tmpdir):
    script = write(tmpdir, "own.py", OWN_PROFILE)
    status, out, err = run(tmpdir, ["own.py"])
    assert status == 0, err
    assert "own.py:%d" % line_in(script, "own") in err


NEVER_CALLED = """
@profile
def unused():
    return 1

print("ran")
"""


def test_decorated_but_never_called_says_so(tmpdir):
    write(tmpdir, "never.py", NEVER_CALLED)
    status, out, err = run(tmpdir, ["never.py"])
    assert status == 0, err
    assert out.strip() == "ran"
    assert "mempulse: no function decorated with @profile was called" in err


def test_the_programs_exit_status_and_exception_are_kept(tmpdir):
    write(tmpdir, "fails.py", "@profile\ndef f():\n    raise KeyError('boom')\n\nf()\n")
    status, out, err = run(tmpdir, ["fails.py"])
    assert status == 1
    assert "KeyError: 'boom'" in err
    assert "mempulse: f: 1 call" in err
