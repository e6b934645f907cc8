"""Tracer behaviour: depth, restoring the previous tracer, bad input, errors."""
import gc
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest
from conftest import HAVE_PSUTIL, MiB, line_of, record_at, touched

import mempulse
from mempulse import _core, _samplers

# Every test here runs under each driver (sys.settrace; sys.monitoring on 3.12+).
pytestmark = pytest.mark.usefixtures("driver")

PACKAGE_DIR = os.path.dirname(os.path.abspath(mempulse.__file__))


def level2():
    return 2  # L:level2


def level1():
    value = level2()  # L:level1
    return value


def gen():
    yield 1  # L:gen-first
    yield 2  # L:gen-second


def consume(iterable):
    return list(iterable)  # L:consume


def lines(result):
    return set((os.path.basename(r.filename), r.lineno) for r in result)


def here(marker):
    return ("test_tracer.py", line_of(marker))


def previous_tracer(frame, event, arg):
    return None


def test_depth_zero_does_nothing(tracer_class):
    called = []
    sys.settrace(previous_tracer)
    try:
        with tracer_class(called.append, 0) as tracer:
            inside = sys.gettrace()
            level1()
    finally:
        sys.settrace(None)
    assert inside is previous_tracer
    assert called == []
    assert isinstance(tracer, tracer_class)


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_depth_counts_levels_below_the_block(tracer_class, depth):
    results = []
    with tracer_class(results.append, depth):
        level1()  # L:block
    seen = lines(results[0])
    assert here("L:block") in seen
    assert here("L:level1") in seen
    assert (here("L:level2") in seen) == (depth >= 2)


def test_own_frames_are_never_recorded(tracer_class):
    results = []
    with tracer_class(results.append, 50):
        level1()
    for record in results[0]:
        assert not os.path.abspath(record.filename).startswith(PACKAGE_DIR), record


def test_generators_count_depth_where_they_run(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        direct = list(gen())  # L:gen-direct
        nested = consume(gen())  # L:gen-nested
    seen = lines(results[0])
    assert here("L:consume") in seen
    # Resumed from the block, the generator runs at level 1 and is recorded;
    # resumed from consume() it runs at level 2, below the depth.
    first = record_at(results[0], line_of("L:gen-first"))
    assert first.hits == 1
    assert direct == nested == [1, 2]


def test_code_first_seen_below_the_depth_is_traced_when_called_within_it(tracer_class):
    # On 3.12+ the first start of gen() (from consume(), too deep) switches
    # off its start events; the direct call afterwards must turn them back on.
    results = []
    with tracer_class(results.append, 1):
        nested = consume(gen())
        direct = list(gen())
    assert record_at(results[0], line_of("L:gen-first")).hits == 1
    assert direct == nested == [1, 2]


def test_a_second_trace_sees_what_the_first_left_untraced(tracer_class):
    first, second = [], []
    with tracer_class(first.append, 1):
        level1()
    with tracer_class(second.append, 2):
        level1()
    assert here("L:level2") not in lines(first[0])
    assert here("L:level2") in lines(second[0])


def recurse(n):
    if n:  # L:recurse
        recurse(n - 1)
    return n


def test_deeper_runs_of_traced_code_are_not_recorded(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        recurse(4)
    # Only the call made by the block is at level 1.
    assert record_at(results[0], line_of("L:recurse")).hits == 1
    results = []
    with tracer_class(results.append, 3):
        recurse(4)
    assert record_at(results[0], line_of("L:recurse")).hits == 3


def test_previous_tracer_and_frame_trace_are_restored(tracer_class):
    frame = sys._getframe()
    sys.settrace(previous_tracer)
    frame.f_trace = previous_tracer
    try:
        with tracer_class(lambda r: None, 1):
            level1()
        assert sys.gettrace() is previous_tracer
        assert frame.f_trace is previous_tracer
        with pytest.raises(KeyError):
            with tracer_class(lambda r: None, 1):
                {}["missing"]
        assert sys.gettrace() is previous_tracer
        assert frame.f_trace is previous_tracer
    finally:
        sys.settrace(None)
        frame.f_trace = None


def test_exception_propagates_unchanged_and_callback_runs_once(tracer_class):
    results = []
    error = ValueError("from the block")
    with pytest.raises(ValueError) as info:
        with tracer_class(results.append, 1):
            blob = touched(8 * MiB)  # L:before-raise
            raise error  # L:raise
    assert info.value is error
    assert len(results) == 1
    assert record_at(results[0], line_of("L:before-raise")).increment >= 7 * MiB
    # Some interpreters (3.9, PyPy) report the raising line again as the
    # exception leaves the block, so it may count twice.
    assert record_at(results[0], line_of("L:raise")).hits >= 1
    blob.close()


@pytest.mark.parametrize("callback", [None, 1, "print"])
def test_callback_must_be_callable(tracer_class, callback):
    with pytest.raises(TypeError):
        tracer_class(callback, 1)


@pytest.mark.parametrize("depth", ["1", 1.0, True, False, None])
def test_depth_must_be_an_int(tracer_class, depth):
    with pytest.raises(TypeError):
        tracer_class(lambda r: None, depth)


def test_depth_must_not_be_negative(tracer_class):
    with pytest.raises(ValueError):
        tracer_class(lambda r: None, -1)


def test_unreadable_proc_gives_a_clear_error():
    with pytest.raises(OSError) as info:
        _samplers.ProcSampler("/nonexistent/proc")
    message = str(info.value)
    assert "statm" in message and "MemoryUsageTracer" in message
    assert info.value.errno == 2


def _run(args):
    """Run a command from an empty directory, so ``import mempulse`` finds the
    installed package, not a source tree in the current directory."""
    cwd = tempfile.mkdtemp()
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd)
        return proc.communicate()[0].decode("utf-8", "replace")
    finally:
        os.rmdir(cwd)


def test_without_proc_mounted_the_c_tracer_says_why():
    """A real machine state: /proc hidden under an empty tmpfs."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/unshare"):
        pytest.skip("needs root and unshare to hide /proc")
    probe = subprocess.call(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs none /proc"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if probe != 0:
        pytest.skip("this sandbox cannot mount over /proc")
    script = (
        "import mempulse\n"
        "try:\n"
        "    mempulse.cMemoryUsageTracer(lambda r: None, 1)\n"
        "except OSError as e:\n"
        "    print('OSError: %s' % e)\n"
    )
    out = _run(
        ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /proc && exec "$0" -c "$1"',
         sys.executable, script]
    )
    assert "OSError" in out and "MemoryUsageTracer" in out, out


def test_memory_usage_tracer_without_psutil_says_how_to_install():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["psutil"] = None
        import mempulse
        try:
            mempulse.MemoryUsageTracer(lambda r: None, 1)
        except ImportError as e:
            print("ImportError: %s" % e)
        """
    )
    out = _run([sys.executable, "-c", script])
    assert "ImportError" in out and "pip install psutil" in out, out


def test_second_tracer_on_the_same_thread_is_refused(tracer_class):
    outer, inner = [], []
    with tracer_class(outer.append, 1):
        try:
            with tracer_class(inner.append, 1):
                pass
        except RuntimeError as e:
            refused = str(e)  # L:refused
        blob = touched(8 * MiB)  # L:after-refused
    assert "already active" in refused
    assert inner == []
    assert record_at(outer[0], line_of("L:after-refused")).increment >= 7 * MiB
    blob.close()


def test_callback_error_propagates_after_tracing_stopped(tracer_class):
    def failing(result):
        assert sys.gettrace() is None
        raise ZeroDivisionError("callback failed")

    with pytest.raises(ZeroDivisionError):
        with tracer_class(failing, 1):
            level1()
    assert sys.gettrace() is None
    results = []
    with tracer_class(results.append, 1):
        level1()
    assert len(results) == 1


def test_tracer_can_be_reused_after_exit(tracer_class):
    results = []
    tracer = tracer_class(results.append, 1)
    for _ in range(3):
        with tracer:
            level1()
    assert len(results) == 3
    assert results[0] is not results[1]


@pytest.mark.skipif(not HAVE_PSUTIL, reason="psutil is not installed")
@pytest.mark.parametrize("good_readings", [0, 2])
def test_sampler_failure_surfaces_after_tracing_stopped(good_readings):
    """A psutil failure, at start or mid-trace, is raised once tracing is off."""
    import psutil

    class Flaky(psutil.Process):
        calls = [0]

        def memory_info(self):
            self.calls[0] += 1
            if self.calls[0] > good_readings:
                raise EnvironmentError("sampler broke")
            return psutil.Process.memory_info(self)

    tracer = mempulse.MemoryUsageTracer(lambda r: None, 1)
    # The psutil meter is process-wide: inject the flaky Process there.
    source = _samplers.meter(tracer._sampler).source
    real, source.proc = source.proc, Flaky()
    try:
        with pytest.raises(EnvironmentError) as info:
            with tracer:
                for i in range(100):
                    level1()
                    touched(MiB).close()
    finally:
        source.proc = real
    assert "sampler broke" in str(info.value)
    assert Flaky.calls[0] > good_readings


@pytest.mark.skipif(not hasattr(sys, "getrefcount"), reason="needs reference counts")
def test_no_code_object_is_kept_after_exit(tracer_class):
    namespace = {}
    exec(compile("def dynamic():\n    return 1\n", "<dynamic>", "exec"), namespace)
    # Held through a list: before 3.11, tracing gives the test's own frame a
    # snapshot dict of its locals, which would hold a local ``code`` too.
    code = [namespace["dynamic"].__code__]
    before = sys.getrefcount(code[0])
    tracer = tracer_class(lambda r: None, 1)  # kept: it must not hold code either
    gc.disable()  # no collection may hide a reference cycle that holds code
    try:
        with tracer:
            namespace["dynamic"]()
        after = sys.getrefcount(code[0])  # not inside assert: pytest's rewrite keeps temporaries
    finally:
        gc.enable()
    assert after == before


def spin(n):
    for i in range(n):
        x = i
    return x


def test_c_memory_grows_with_callsites_not_events(tracer_class):
    sizes = []
    with tracer_class(lambda r: None, 1) as tracer:
        for n in (10, 200000):
            spin(n)
            sizes.append(_core.lib.mp_footprint(tracer._session.main.c))
    assert sizes[0] == sizes[1]
