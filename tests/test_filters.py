"""include/exclude filters: filtered code is transparent (no rows, no level), API and CLI."""
import copy
import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import MiB, line_of, record_at, touched

import mempulse
from mempulse import _filters

# Every test here runs under each driver (sys.settrace; sys.monitoring on 3.12+).
pytestmark = pytest.mark.usefixtures("driver")

HERE = os.path.abspath(__file__).replace(".pyc", ".py")

KEPT = []


class Grows(object):
    """copy.deepcopy (library code) calls back into this file: the callback allocates."""

    def __deepcopy__(self, memo):
        KEPT.append(touched(8 * MiB))  # L:deepcopy
        return Grows()


def files(result):
    return set(os.path.basename(r.filename) for r in result)


def test_library_code_is_transparent_so_depth_counts_own_functions(tracer_class):
    results = []
    with tracer_class(results.append, 1, include=mempulse.OWN_CODE):
        copy.deepcopy(Grows())  # L:copy-call
    [result] = results
    # deepcopy took no level: the callback it made is level 1, recorded.
    assert record_at(result, line_of("L:deepcopy")).increment >= 7 * MiB
    assert record_at(result, line_of("L:copy-call")).increment >= 7 * MiB
    assert files(result) == {"test_filters.py"}
    del KEPT[:]


NESTED = {"a": [Grows(), {"b": (Grows(),)}]}


def test_callbacks_below_several_library_frames_are_found(tracer_class):
    results = []
    with tracer_class(results.append, 1, include=mempulse.OWN_CODE):
        for _ in range(3):
            copy.deepcopy(NESTED)  # L:nested-call
    # deepcopy -> _deepcopy_dict -> deepcopy -> _deepcopy_list -> ... -> __deepcopy__
    assert record_at(results[0], line_of("L:deepcopy")).hits == 6
    assert files(results[0]) == {"test_filters.py"}
    del KEPT[:]


def test_without_a_filter_library_code_is_a_level(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        copy.deepcopy(Grows())
    # copy.py's deepcopy is level 1; the callback is level 2, not recorded.
    assert "copy.py" in files(results[0])
    assert line_of("L:deepcopy") not in [r.lineno for r in results[0] if r.filename == HERE]
    del KEPT[:]


HELPERS = """
import mmap

def inner():
    m = mmap.mmap(-1, 4 << 20)
    m.write(b"i" * (4 << 20))  # L:inner
    return m

def outer():
    return inner()  # L:outer
"""


@pytest.fixture
def helpers(tmpdir):
    path = tmpdir.join("fhelpers.py")
    path.write(textwrap.dedent(HELPERS))
    sys.path.insert(0, str(tmpdir))
    try:
        import fhelpers

        yield fhelpers
    finally:
        sys.path.remove(str(tmpdir))
        sys.modules.pop("fhelpers", None)


def helper_lines(result, module):
    path = os.path.abspath(module.__file__).replace(".pyc", ".py")
    return set(r.lineno for r in result if os.path.abspath(r.filename) == path)


def test_exclude_by_module_name(helpers, tracer_class):
    results = []
    # fhelpers excluded: outer() is transparent, and so is inner() (same module).
    with tracer_class(results.append, 2, exclude="fhelpers") as t:
        helpers.outer().close()
    assert helper_lines(results[0], helpers) == set()
    assert files(results[0]) == {"test_filters.py"}
    assert t.trace_depth == 2


def test_include_by_path_glob_records_only_matching_code(helpers, tracer_class):
    results = []
    pattern = os.path.join(os.path.dirname(helpers.__file__), "fh*.py")
    with tracer_class(results.append, 1, include=[pattern]):
        helpers.outer().close()  # not recorded: this file does not match
    path = helpers.__file__.replace(".pyc", ".py")
    # The block is transparent: outer() is level 1 (recorded), inner() level 2 (not).
    assert helper_lines(results[0], helpers) == {line_of("L:outer", path)}
    assert record_at(results[0], line_of("L:outer", path), path).increment >= 3 * MiB


def test_exclude_wins_over_include(helpers, tracer_class):
    results = []
    with tracer_class(results.append, 3, include=["fhelpers", HERE], exclude=[HERE]):
        helpers.outer().close()
    path = helpers.__file__.replace(".pyc", ".py")
    assert {line_of("L:outer", path), line_of("L:inner", path)} <= helper_lines(results[0], helpers)
    assert files(results[0]) == {"fhelpers.py"}


def test_profile_decorator_takes_filters(tracer_class):
    results = []

    @mempulse.profile(depth=2, callback=results.append, tracer=tracer_class, include=mempulse.OWN_CODE)
    def work():
        return copy.deepcopy(Grows())

    work()
    assert record_at(results[0], line_of("L:deepcopy")).increment >= 7 * MiB
    del KEPT[:]


@pytest.mark.skipif(not hasattr(sys, "monitoring"), reason="sys.monitoring is 3.12+")
def test_filtered_code_gets_no_line_events_under_sys_monitoring(tracer_class, driver):
    if driver != "sysmon":
        pytest.skip("sys.monitoring only")
    from mempulse import _sysmon

    seen = {}
    with tracer_class(lambda r: None, 2, include=mempulse.OWN_CODE):
        copy.deepcopy(Grows())
        seen = dict(_sysmon._monitor.enabled)
    line = sys.monitoring.events.LINE
    deepcopy_code = copy.deepcopy.__code__
    # Not followed at all: no local event (its start is disabled); the
    # callback it makes is found by walking up through it.
    assert not seen.get(id(deepcopy_code), 0)
    assert seen[id(Grows.__deepcopy__.__code__)] & line
    del KEPT[:]


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"include": 3}, TypeError),
        ({"exclude": {"a": 1}}, TypeError),
        ({"include": ["ok", 5]}, TypeError),
        ({"include": ""}, ValueError),
        ({"exclude": ["  "]}, ValueError),
    ],
)
def test_bad_filters_fail_at_construction(tracer_class, kwargs, error):
    with pytest.raises(error):
        tracer_class(lambda r: None, 1, **kwargs)
    with pytest.raises(error):
        mempulse.profile(**kwargs)(lambda: None)
    with pytest.raises(error):
        mempulse.Profile(**kwargs)


def test_what_counts_as_library_code():
    norm = _filters._normalized
    assert _filters.is_library(norm(os.__file__))
    assert _filters.is_library(norm(json.__file__))
    assert _filters.is_library(norm(pytest.__file__))  # site-packages of this venv
    assert _filters.is_library("<frozen importlib._bootstrap>")
    assert not _filters.is_library("<string>")
    assert not _filters.is_library(norm(HERE))


# ---- the command line ------------------------------------------------------------------

APP = """
import functools
import copy
import mmap


def wrapped():
    return [0] * 1000


@functools.wraps(wrapped)
def shim():
    return wrapped()


class Node(object):
    def __deepcopy__(self, memo):
        m = mmap.mmap(-1, 8 << 20)
        m.write(b"d" * (8 << 20))  # L:deepcopy
        return m


import json
data = shim()
node = copy.deepcopy(Node())
"""


def run_cli(tmpdir, *args):
    script = tmpdir.join("app.py")
    script.write(textwrap.dedent(APP).lstrip())
    proc = subprocess.Popen(
        [sys.executable, "-m", "mempulse"] + list(args) + ["--json", "out.json", "app.py"],
        cwd=str(tmpdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate()
    err = err.decode("utf-8", "replace")
    assert proc.returncode == 0, err
    with open(str(tmpdir.join("out.json"))) as f:
        return mempulse.load_json(f), err, str(script)


def test_cli_records_only_the_programs_own_code_by_default(tmpdir):
    result, err, script = run_cli(tmpdir, "--depth", "2")
    assert "<frozen importlib._bootstrap>" not in err
    assert "functools" not in err
    assert set(os.path.basename(r.filename) for r in result) == {"app.py"}
    # copy.deepcopy is transparent: the method it calls is level 2.
    deep = [r for r in result if r.lineno == line_of("L:deepcopy", script)]
    assert deep and deep[0].increment >= 7 * MiB


def test_cli_all_code_records_everything(tmpdir):
    result, err, _ = run_cli(tmpdir, "--depth", "2", "--all-code")
    names = set(os.path.basename(r.filename) for r in result)
    assert "functools.py" in names
    if sys.version_info >= (3, 3) and not hasattr(sys, "pypy_version_info"):
        assert "<frozen importlib._bootstrap>" in err


def test_cli_include_adds_library_code_and_exclude_removes(tmpdir):
    result, _, _ = run_cli(tmpdir, "--depth", "2", "--include", "functools", "--exclude", "*/app.py")
    names = set(os.path.basename(r.filename) for r in result)
    assert names == {"functools.py"}


@pytest.mark.parametrize("args", [["--include", ""], ["--exclude", " "], ["--include"]])
def test_cli_bad_filter_is_one_line_and_status_2(tmpdir, args):
    tmpdir.join("app.py").write("print('ran')\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mempulse"] + args + ["app.py"],
        cwd=str(tmpdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate()
    assert proc.returncode == 2
    assert b"ran" not in out
    assert len(err.decode().strip().splitlines()) == 1
