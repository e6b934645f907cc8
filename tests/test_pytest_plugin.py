"""The pytest plugin, run for real: pytest subprocesses over generated test files.

Each run is a fresh ``python -m pytest`` in a temporary directory that
finds the plugin through its ``pytest11`` entry point in the installed
wheel, and allocates real memory.
"""
import os
import platform
import re
import sys

import pytest

pytest_plugins = "pytester"

MB = 1000 * 1000

try:
    import xdist  # noqa: F401

    HAVE_XDIST = True
except ImportError:
    HAVE_XDIST = False

try:
    import psutil  # noqa: F401

    HAVE_PSUTIL = True
except ImportError:
    HAVE_PSUTIL = False

needs_xdist = pytest.mark.skipif(not HAVE_XDIST, reason="pytest-xdist is not installed")

# Tests allocating memory the limit must notice.  GROWS keeps its 50 MB past
# the test (USS grows), SPIKES frees it before returning (only the peak).
LIMITS = """
import pytest

MB = 1000 * 1000
KEEP = []


def helper(n):
    return b"h" * n  # helper line


@pytest.mark.limit_memory("10 MB")
def test_grows():
    small = [0] * 10
    KEEP.append(b"x" * (50 * MB))  # grows line
    assert small


@pytest.mark.limit_memory("10 MB")
def test_spikes():
    blob = b"y" * (50 * MB)  # spike line
    del blob


@pytest.mark.limit_memory("200 MB")
def test_within():
    blob = helper(50 * MB)  # within line
    assert len(blob) == 50 * MB


def test_unmarked():
    blob = b"z" * (50 * MB)
    assert blob
"""


def line_in(source, marker):
    """1-based number of the line of ``source`` ending with ``# <marker>``."""
    for number, text in enumerate(source.split("\n"), 0):
        if text.rstrip().endswith("# " + marker):
            return number
    raise LookupError(marker)


@pytest.fixture
def tester(request):
    # pytest 6.2+ has the pytester fixture; pytest 4.6 (Python 2.7) has testdir.
    return request.getfixturevalue("pytester" if hasattr(pytest, "Pytester") else "testdir")


def run(tester, *args):
    return tester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def outcomes(result):
    """{"passed": n, ...} from the summary line, with pytest 4.6's names normalized."""
    counts = {}
    for name, count in result.parseoutcomes().items():
        name = {"error": "errors"}.get(name, name)
        # (pytest 4.6 also parses "in 0.45 seconds" as 45 "seconds")
        if name in ("passed", "failed", "errors", "skipped", "xfailed", "xpassed"):
            counts[str(name)] = count
    return counts


def test_plugin_is_registered_through_the_entry_point(tester):
    result = run(tester, "--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--mempulse *", "*--mempulse-depth=N*"])
    markers = run(tester, "--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.limit_memory(size):*"])


def test_limit_memory_fails_tests_over_the_limit_and_names_the_lines(tester):
    tester.makepyfile(test_limits=LIMITS)
    result = run(tester, "-v")
    assert outcomes(result) == {"passed": 2, "failed": 2}, result.stdout.str()
    result.stdout.fnmatch_lines(["*::test_within PASSED*", "*::test_unmarked PASSED*"])
    out = result.stdout.str()

    grows = out[out.index("mempulse: test_grows exceeded"):]
    grows = grows[:grows.index("\n_")] if "\n_" in grows else grows
    assert "exceeded limit_memory('10 MB')" in grows
    # Both measures went over: the 50 MB is still held after the test.
    match = re.search(
        r"memory growth \(USS increase over the test\): ([\d.]+) MB \(([\d,]+) bytes\) "
        r"EXCEEDED the limit 10\.0 MB \(10,000,000 bytes\)",
        grows,
    )
    assert match, grows
    assert 48 * MB < int(match.group(2).replace(",", "")) < 60 * MB
    assert re.search(r"peak \(highest RSS reached above where the test started\): "
                     r"[\d.]+ MB \([\d,]+ bytes\) EXCEEDED the limit 10\.0 MB", grows), grows
    # The line that grew is the first row of the table, with about +50 MB.
    rows = grows[grows.index("lines that grew most:"):].split("\n")
    assert rows[1].startswith("Callsite"), rows
    first = rows[3].split()
    assert first[0] == "test_limits.py:%d" % line_in(LIMITS, "grows line"), rows
    assert first[1] == "test_grows"
    assert 48 * MB < int(first[6].replace(",", "")) < 60 * MB

    spikes = out[out.index("mempulse: test_spikes exceeded"):]
    if platform.python_implementation() == "CPython":
        # Only the peak went over: the blob was freed before the test
        # returned (PyPy frees it at some later collection).
        assert re.search(r"memory growth \(USS increase over the test\): .* within the limit 10\.0 MB",
                         spikes), spikes
    assert re.search(r"peak \(highest RSS reached above where the test started\): "
                     r"([\d.]+) MB \([\d,]+ bytes\) EXCEEDED the limit 10\.0 MB", spikes), spikes
    spike_row = "test_limits.py:%d" % line_in(LIMITS, "spike line")
    assert spike_row + " " in spikes[spikes.index("lines that grew most:"):]


def test_an_earlier_peak_of_the_process_does_not_count(tester):
    # The first test takes the process's RSS 200 MB higher and gives it
    # back; the marked test after it allocates nothing much.
    tester.makepyfile(
        test_peaks="""
        import pytest

        def test_a_big_one():
            blob = b"x" * (200 * 1000 * 1000)
            del blob

        @pytest.mark.limit_memory("20 MB")
        def test_small_after_it():
            small = [0] * 1000
            assert len(small) == 1000
        """
    )
    result = run(tester)
    assert outcomes(result) == {"passed": 2}, result.stdout.str()


def test_without_marker_or_option_outcomes_are_unchanged(tester):
    tester.makepyfile(
        test_outcomes="""
        import sys
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture fails")

        def test_pass():
            # Nothing traces a test that did not ask for it.
            assert sys.gettrace() is None

        def test_fail():
            assert 1 == 2

        def test_error(broken):
            pass

        @pytest.mark.skip(reason="skipped")
        def test_skip():
            pass

        @pytest.mark.xfail(reason="expected")
        def test_xfail():
            assert False

        def test_allocates():
            blob = b"x" * (30 * 1000 * 1000)
            assert len(blob) == 30 * 1000 * 1000
        """
    )
    expected = {"passed": 2, "failed": 1, "errors": 1, "skipped": 1, "xfailed": 1}
    with_plugin = run(tester)
    without_plugin = run(tester, "-p", "no:mempulse")
    assert outcomes(with_plugin) == expected, with_plugin.stdout.str()
    assert outcomes(without_plugin) == expected, without_plugin.stdout.str()
    out = with_plugin.stdout.str()
    assert "Captured mempulse" not in out and "mempulse: memory by line" not in out, out


TABLE = """
MB = 1000 * 1000


def helper(n):
    return b"h" * n  # helper line


def test_one():
    data = b"a" * (20 * MB)  # one line
    more = helper(10 * MB)  # calls helper
    assert data and more


class TestGroup(object):
    def test_two(self):
        values = list(range(1000))  # two line
        assert values
"""


# The tests below check that a 20 MB line shows its growth.  pytest's own
# start-up leaves tens of MB of freed, still resident heap (Python 2.7: 34
# MB, depending on when its garbage collector last ran), which such a line
# may reuse without growing USS at all: what mempulse then rightly reports.
# Each test is given fresh memory first, as a fresh process has it.
FRESH_MEMORY = """
def pytest_runtest_setup(item):
    import ctypes, gc
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc: free heap pages go back
    except (AttributeError, OSError):
        pass
"""


def with_test_file(tester, **files):
    """``tester.makepyfile(**files)``, with fresh memory for each test (FRESH_MEMORY)."""
    tester.makeconftest(FRESH_MEMORY)
    tester.makepyfile(**files)


def table_rows(out, nodeid):
    """The rows (split on whitespace) printed under ``nodeid`` in the summary."""
    lines = out.split("\n")
    start = lines.index(nodeid)
    assert lines[start + 1].split()[0] == "Callsite", lines[start:start + 3]
    rows = []
    for line in lines[start + 3:]:
        if not line.startswith("    ") or not line.strip() or line.strip().startswith("Peak RSS:"):
            break
        rows.append(line.split())
    return rows


def check_tables(out, depth, increments=True):
    assert "mempulse: memory by line (depth %d)" % depth in out, out
    one = table_rows(out, "test_table.py::test_one")
    own = [r[0] for r in one if r[1] == "test_one"]
    assert own == [
        "test_table.py:%d" % line_in(TABLE, "one line"),
        "test_table.py:%d" % line_in(TABLE, "calls helper"),
        "test_table.py:%d" % (line_in(TABLE, "calls helper") + 1),
    ], one
    if increments:
        assert int(one[0][6].replace(",", "")) > 15 * MB  # the 20 MB line: Increment (net)
    others = [r[:2] for r in one if r[1] != "test_one"]
    # No pytest or pluggy frame took a level: depth 1 is the test's own
    # lines, depth 2 adds the helper it calls (and, on PyPy, the weakref
    # callbacks its garbage collector happens to run inside the test).
    if depth == 1:
        assert others == [], one
    else:
        assert ["test_table.py:%d" % line_in(TABLE, "helper line"), "helper"] in others, one
        assert not [r for r in others if "pytest" in r[0] or "pluggy" in r[0]], one
    two = table_rows(out, "test_table.py::TestGroup::test_two")
    assert two[0][:2] == ["test_table.py:%d" % line_in(TABLE, "two line"), "test_two"], two


def test_option_prints_a_table_per_test(tester):
    with_test_file(tester, test_table=TABLE)
    result = run(tester, "--mempulse")
    assert outcomes(result) == {"passed": 2}, result.stdout.str()
    check_tables(result.stdout.str(), depth=1)


def test_depth_option_goes_into_called_functions(tester):
    with_test_file(tester, test_table=TABLE)
    result = run(tester, "--mempulse", "--mempulse-depth", "2")
    assert outcomes(result) == {"passed": 2}, result.stdout.str()
    check_tables(result.stdout.str(), depth=2)


def test_table_of_a_failing_test_is_printed_too(tester):
    tester.makepyfile(
        test_fails="""
        def test_fails():
            data = [0] * 1000  # before the failure
            assert len(data) == 1
        """
    )
    result = run(tester, "--mempulse")
    assert outcomes(result) == {"failed": 1}
    rows = table_rows(result.stdout.str(), "test_fails.py::test_fails")
    assert [r[0] for r in rows] == ["test_fails.py:2", "test_fails.py:3"]
    # The failure report carries the table as a section as well.
    result.stdout.fnmatch_lines(["*Captured mempulse call*"])


@needs_xdist
def test_option_and_marker_with_xdist_workers(tester):
    tester.makepyfile(test_table=TABLE, test_limits=LIMITS)
    result = run(tester, "-n", "2", "--dist", "loadfile", "--mempulse")
    out = result.stdout.str()
    assert outcomes(result) == {"passed": 4, "failed": 2}, out
    assert "gw1" in out or "2 workers" in out, out  # xdist did run workers
    # Not the 20 MB line's increment: xdist may run both files in one
    # worker, whose heap then holds the 50 MB test_limits freed, and the
    # line reuses it (seen on 2.7, with --dist loadfile too).  The
    # increments are checked without workers above.
    check_tables(out, depth=1, increments=False)
    grows = out[out.index("mempulse: test_grows exceeded"):]
    assert "EXCEEDED the limit 10.0 MB" in grows
    assert "test_limits.py:%d " % line_in(LIMITS, "grows line") in grows
    within = table_rows(out, "test_limits.py::test_within")
    assert within[0][0] == "test_limits.py:%d" % line_in(LIMITS, "within line")


@pytest.mark.parametrize(
    "args, message",
    [
        ('"ten MB"', "cannot read 'ten MB' as a size: write a number and a unit, e.g. '100 MB'"),
        ('"10 XB"', "cannot read '10 XB' as a size"),
        ("-5", "a size cannot be negative, got -5"),
        ("True", "a size must be a string like '100 MB' or an int number of bytes, got True"),
        ("", "takes one size, e.g. @pytest.mark.limit_memory('100 MB'); got limit_memory()"),
        ('"1 MB", "2 MB"', "takes one size, e.g. *; got limit_memory('1 MB', '2 MB')"),
        ('size="1 MB"', "takes one size, e.g. *; got limit_memory(size='1 MB')"),
    ],
)
def test_bad_limit_is_an_error_of_that_test(tester, args, message):
    tester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.limit_memory(%s)
        def test_bad():
            pass

        def test_good():
            pass
        """
        % args
    )
    result = run(tester)
    assert outcomes(result) == {"passed": 1, "errors": 1}, result.stdout.str()
    result.stdout.fnmatch_lines(["*mempulse: bad limit_memory marker on test_bad: " + message + "*"])


def test_limit_on_a_unittest_method_is_an_error(tester):
    tester.makepyfile(
        test_case="""
        import unittest
        import pytest

        class Case(unittest.TestCase):
            @pytest.mark.limit_memory("10 MB")
            def test_method(self):
                pass
        """
    )
    result = run(tester)
    assert outcomes(result) == {"errors": 1}, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*limit_memory cannot measure test_method: TestCaseFunction is not a plain pytest test function*"]
    )


def test_bad_depth_is_a_usage_error(tester):
    tester.makepyfile("def test_x():\n    pass\n")
    result = run(tester, "--mempulse", "--mempulse-depth", "0")
    assert result.ret == 4  # pytest's usage error
    result.stderr.fnmatch_lines(["*--mempulse-depth must be 1 or more, got 0*"])


def can_hide_smaps_rollup():
    """Whether this process may run a command with /proc/self/smaps_rollup hidden."""
    import subprocess

    if not sys.platform.startswith("linux") or not os.path.exists("/proc/self/smaps_rollup"):
        return False
    try:
        with open(os.devnull, "w") as devnull:
            return subprocess.call(HIDE_ROLLUP + ["true"], stdout=devnull, stderr=devnull) == 0
    except OSError:
        return False


# A private mount namespace (root only) where /dev/null covers the shell's
# smaps_rollup; the shell then execs the command, which keeps its pid, so the
# command's /proc/self/smaps_rollup is empty and the C sampler cannot work.
HIDE_ROLLUP = ["unshare", "-m", "sh", "-c", 'mount --bind /dev/null /proc/$$/smaps_rollup && exec "$@"', "sh"]


@pytest.mark.skipif(not HAVE_PSUTIL, reason="psutil is not installed")
@pytest.mark.skipif(not can_hide_smaps_rollup(), reason="needs root and unshare to hide /proc/self/smaps_rollup")
def test_falls_back_to_psutil_where_proc_is_unusable(tester):
    # psutil's peaks are lifetime marks, and getrusage's mark starts at the
    # peak of the process we were exec'd from (this pytest): a spike above it.
    tester.makepyfile(
        test_limits=LIMITS.replace('b"y" * (50 * MB)', 'b"y" * (600 * MB)'),
        test_sampler="""
        import mempulse
        from mempulse._profile import _default_tracer_class

        def test_the_c_sampler_is_unusable_here():
            assert _default_tracer_class() is mempulse.MemoryUsageTracer
        """,
    )
    result = tester.run(*HIDE_ROLLUP + [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--mempulse"])
    out = result.stdout.str()
    assert outcomes(result) == {"passed": 3, "failed": 2}, out
    grows = out[out.index("mempulse: test_grows exceeded"):]
    assert "EXCEEDED the limit 10.0 MB" in grows
    assert "test_limits.py:%d " % line_in(LIMITS, "grows line") in grows
    within = table_rows(out, "test_limits.py::test_within")
    assert within[0][0] == "test_limits.py:%d" % line_in(LIMITS, "within line")


# The compiled core and the tracer: what loading the plugin must not import.
CORE_MODULES = ("mempulse._core", "mempulse._api", "mempulse._ffi", "mempulse._tracer")

# Runs pytest with the compiled core unloadable: importing any of
# CORE_MODULES raises ImportError, as it would with a broken build.
BLOCKED_PYTEST = """
import sys

BLOCKED = %r


class Blocker(object):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED:
            raise ImportError("%%s is blocked by this test" %% name)
        return None

    find_module = find_spec


sys.meta_path.insert(0, Blocker())
import pytest

sys.exit(pytest.main(sys.argv[1:]))
""" % (CORE_MODULES,)


def mempulse_imports_its_core():
    """Whether ``import mempulse`` itself loads the compiled core (an eager __init__)."""
    import subprocess

    code = "import sys, mempulse; sys.stdout.write(str('mempulse._core' in sys.modules))"
    import tempfile

    # Not from the repo root: that would import the source tree.
    out = subprocess.check_output([sys.executable, "-c", code], cwd=tempfile.gettempdir())
    return out.decode().strip() == "True"


@pytest.mark.skipif(sys.version_info < (3, 7), reason="lazy imports need PEP 562 (Python 3.7+)")
def test_loading_the_plugin_imports_no_compiled_core(tester):
    if mempulse_imports_its_core():
        pytest.xfail("needs the lazy mempulse/__init__.py (PEP 562) of the packaging branch")
    tester.makepyfile(
        test_plain="""
        import sys

        def test_plain():
            assert sum(range(10)) == 45

        def test_nothing_of_mempulse_loaded():
            loaded = [m for m in %r if m in sys.modules]
            assert loaded == []
        """
        % (CORE_MODULES,)
    )
    script = tester.makepyfile(run_blocked=BLOCKED_PYTEST)
    result = tester.run(sys.executable, str(script), "-p", "no:cacheprovider", "test_plain.py")
    assert outcomes(result) == {"passed": 2}, result.stdout.str() + result.stderr.str()
    # The plugin is there: its option and marker are known.
    result = tester.run(sys.executable, str(script), "-p", "no:cacheprovider", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.limit_memory(size):*"])


NESTED = """
import mempulse

MB = 1000 * 1000


def test_uses_mempulse_itself():
    results = []
    with mempulse.cMemoryUsageTracer(results.append, 1):
        data = b"n" * (20 * MB)  # inner line
    rows = [r for r in results[0] if r.function == "test_uses_mempulse_itself"]
    assert rows and max(r.increment for r in rows) > 15 * MB
    del data


@mempulse.profile(callback=lambda result: None)
def profiled():
    return [0] * 1000


def test_calls_a_profiled_function():
    assert len(profiled()) == 1000
"""


def test_option_with_tests_that_trace_themselves(tester):
    with_test_file(tester, test_nested=NESTED)
    result = run(tester, "--mempulse")
    assert outcomes(result) == {"passed": 2}, result.stdout.str()
    assert "mempulse: memory by line (depth 1)" in result.stdout.str()
    # The test's own tracer saw its lines; the plugin's table has them too.
    rows = table_rows(result.stdout.str(), "test_nested.py::test_uses_mempulse_itself")
    assert rows, result.stdout.str()


# ---- limit_leaks, the ini default, --mempulse-json ----------------------------------

LEAKS = """
import mmap

import pytest

MB = 1000 * 1000
KEEP = []
CALLS = []
CHUNK = b"l" * (3 << 20)


@pytest.mark.limit_leaks("1 MB")
def test_leaks():
    # A fresh mapping, every page written: the heap could hand back pages
    # that are already resident (2.7's pytest frees a large block at start).
    KEEP.append(mmap.mmap(-1, 3 << 20)); KEEP[-1].write(CHUNK)  # leak line
    small = [0] * 10
    assert small


@pytest.mark.limit_leaks("1 MB")
def test_frees_what_it_takes():
    blob = b"f" * (20 * MB)  # freed line
    del blob


CACHE = []


@pytest.mark.limit_leaks("1 MB", runs=4, warmups=1)
def test_fills_a_cache_once():
    if not CACHE:
        CACHE.append(b"c" * (20 * MB))  # cache line


@pytest.mark.limit_leaks("1 MB", runs=3, warmups=2)
def test_counted():
    CALLS.append(1)


def test_zz_counted_ran_warmups_and_runs():
    assert len(CALLS) == 5
"""


def test_limit_leaks_fails_a_growing_test_and_shows_the_line(tester):
    tester.makepyfile(test_leaks=LEAKS)
    result = run(tester, "-v")
    out = result.stdout.str()
    assert outcomes(result) == {"passed": 4, "failed": 1}, out
    result.stdout.fnmatch_lines(["*::test_leaks FAILED*"])
    leak = out[out.index("mempulse: test_leaks leaks"):]
    match = re.search(r"grew by ([\d.]+) MB \(([\d,]+) bytes\) per run \(median of 5 runs\), "
                      r"more than limit_leaks\('1 MB'\) allows", leak)
    assert match, leak
    assert 2.5 * MB < int(match.group(2).replace(",", "")) < 4 * MB
    assert "growth of each run:" in leak
    rows = leak[leak.index("lines that grew most (all 5 runs):"):].split("\n")
    first = rows[3].split()
    assert first[0] == "test_leaks.py:%d" % line_in(LEAKS, "leak line"), rows
    assert first[5] == "5"  # hits: one per measured run
    assert 12 * MB < int(first[-1].replace(",", "").replace("+", "")) < 20 * MB


@pytest.mark.parametrize(
    "args, message",
    [
        ('"lots"', "cannot read 'lots' as a size"),
        ('"1 MB", runs=1', "runs must be an int >= 2, got 1"),
        ('"1 MB", warmups=-1', "warmups must be an int >= 0, got -1"),
        ('"1 MB", rounds=3', "takes one size and optionally runs= and warmups=*got limit_leaks('1 MB', rounds=3)"),
    ],
)
def test_bad_limit_leaks_is_an_error_of_that_test(tester, args, message):
    tester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.limit_leaks(%s)
        def test_bad():
            pass

        def test_good():
            pass
        """ % args
    )
    result = run(tester)
    assert outcomes(result) == {"passed": 1, "errors": 1}, result.stdout.str()
    result.stdout.fnmatch_lines(["*mempulse: bad limit_leaks marker on test_bad: " + message + "*"])


INI_LIMIT = """
import pytest

MB = 1000 * 1000
KEEP = []


def test_grows_past_the_default():
    KEEP.append(b"d" * (50 * MB))  # default line


def test_small():
    assert [0] * 10


@pytest.mark.limit_memory("200 MB")
def test_marker_overrides_the_default():
    KEEP.append(b"m" * (50 * MB))
"""


def test_ini_option_sets_a_default_limit_for_every_test(tester):
    tester.makeini("[pytest]\nmempulse_limit_memory = 10 MB\n")
    tester.makepyfile(test_ini=INI_LIMIT)
    result = run(tester, "-v")
    out = result.stdout.str()
    assert outcomes(result) == {"passed": 2, "failed": 1}, out
    result.stdout.fnmatch_lines(["*::test_grows_past_the_default FAILED*"])
    failure = out[out.index("mempulse: test_grows_past_the_default exceeded"):]
    assert failure.startswith("mempulse: test_grows_past_the_default exceeded mempulse_limit_memory = 10 MB:"), failure
    assert "test_ini.py:%d " % line_in(INI_LIMIT, "default line") in failure


def test_bad_ini_limit_is_a_usage_error(tester):
    tester.makeini("[pytest]\nmempulse_limit_memory = ten\n")
    tester.makepyfile("def test_x():\n    pass\n")
    result = run(tester)
    assert result.ret != 0
    assert "mempulse_limit_memory: cannot read 'ten' as a size" in result.stderr.str() + result.stdout.str()


def path_in(tester, *parts):
    base = getattr(tester, "path", None) or tester.tmpdir  # pytester / testdir (pytest 4.6)
    return os.path.join(str(base), *parts)


def check_json_dir(directory, expected):
    import mempulse

    names = sorted(os.listdir(directory))
    assert names == sorted(expected), names
    results = {}
    for name in names:
        with open(os.path.join(directory, name)) as f:
            results[name] = mempulse.load_json(f)
    return results


def test_json_option_writes_each_tests_result(tester):
    with_test_file(tester, test_table=TABLE)
    result = run(tester, "--mempulse-json", "out/json")
    assert outcomes(result) == {"passed": 2}, result.stdout.str()
    results = check_json_dir(
        path_in(tester, "out", "json"),
        ["test_table.py_test_one.json", "test_table.py_TestGroup_test_two.json"],
    )
    one = results["test_table.py_test_one.json"]
    assert one.metadata["test"] == "test_table.py::test_one"
    line = [r for r in one if r.lineno == line_in(TABLE, "one line")]
    assert line and line[0].increment > 15 * MB


@needs_xdist
def test_json_and_limit_leaks_with_xdist_workers(tester):
    tester.makepyfile(test_table=TABLE, test_leaks=LEAKS)
    result = run(tester, "-n", "2", "--mempulse-json", "out")
    out = result.stdout.str()
    assert "gw1" in out or "2 workers" in out, out
    # test_zz_counted... may run on another worker than test_counted: only the leak verdicts matter.
    counts = outcomes(result)
    assert counts["failed"] in (1, 2), out
    assert "mempulse: test_leaks leaks" in out
    assert "test_leaks.py:%d " % line_in(LEAKS, "leak line") in out
    names = os.listdir(path_in(tester, "out"))
    assert "test_table.py_test_one.json" in names and "test_leaks.py_test_leaks.json" in names, names
