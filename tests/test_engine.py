"""The engine under real programs: threads at exit, generators, coroutines,
exceptions, interrupts, nesting, coexistence, equal code objects.

Every test runs under each driver (``driver`` fixture); scenarios that could
hang or kill the interpreter run in a subprocess with a timeout.
"""
import os
import sys
import threading
import warnings

import pytest

import mempulse
from conftest import MiB, line_of, record_at, run_python, use_driver

HAVE_ASYNCIO_RUN = sys.version_info >= (3, 7)
PY2 = sys.version_info[0] == 2


def assert_no_monitoring_left(*functions):
    """No tool id but a mempulse one, kept for the next block (3.13+: its
    global events stay on).  3.13+: the last block's codes may stay warm
    (their local events kept for the next block) until code runs outside
    blocks; ``functions`` (traced by the last block, called with 0) are run
    outside any block until the tool is idle: then no code has a local
    event and none is held."""
    from mempulse import _sysmon

    m = sys.monitoring
    assert m.get_tool(2) is None  # the profiler's: given back at once
    for _ in range(_sysmon._OUTSIDE_EVENTS):
        for function in functions:
            function(0)
    for tool in (3, 4):
        assert m.get_tool(tool) in (None, "mempulse")
        if m.get_tool(tool) is not None:
            assert m.get_events(tool) == (_sysmon._GLOBAL_EVENTS if _sysmon._EVENTS_STAY_ON else 0)
            assert _sysmon._monitor.idle and not _sysmon._monitor.codes
            for function in functions:
                assert m.get_local_events(tool, function.__code__) == 0


def lines_of(result, function):
    return sorted(r.lineno for r in result if r.function == function)


# ---- threads still running when the block exits ---------------------------
def test_threads_running_at_exit_never_fail(tracer_class, driver):
    """200 exits with two busy traced threads: no error in them or in __exit__."""
    errors = []
    results = []

    def busy(stop):
        try:
            total = 0
            while not stop.is_set():
                total += 1
                total -= 1
                helper_line(total)
        except BaseException as e:  # pragma: no cover - the failure shown
            errors.append(repr(e))

    for _ in range(200):
        stop = threading.Event()
        threads = [threading.Thread(target=busy, args=(stop,)) for _ in range(2)]
        try:
            with tracer_class(results.append, 2):
                for t in threads:
                    t.start()
                helper_line(1)
        finally:
            stop.set()
            for t in threads:
                if t.ident is not None:
                    t.join()
    assert errors == []
    assert len(results) == 200
    assert mempulse._tracer.current_tracer() is None


def helper_line(x):
    return x + 1


THREADS_STARTED_AT_EXIT = """
import sys, threading, time
import mempulse
from mempulse import _core

rounds, slow_bind = int(sys.argv[1]), sys.argv[2] == "slow"
real = _core.load().lib
main = threading.current_thread()
delayed = []


class SlowBind(object):
    # The core, with every worker's bind late: the session ends meanwhile.
    def __getattr__(self, name):
        return getattr(real, name)

    def mp_bind(self, c):
        if threading.current_thread() is not main and c != _core.ffi.NULL:
            delayed.append(1)
            time.sleep(0.002)
        real.mp_bind(c)


if slow_bind:
    _core.lib = SlowBind()  # the engine looks it up at each call
elif getattr(sys, "setswitchinterval", None) is not None:
    sys.setswitchinterval(1e-5)  # many thread switches: the race shows sooner
ran = []
results = []
for r in range(rounds):
    threads = [threading.Thread(target=ran.append, args=(r,)) for _ in range(2)]
    with mempulse.cMemoryUsageTracer(results.append, 2):
        for t in threads:
            t.start()
    for t in threads:
        t.join()
assert len(results) == rounds
assert not slow_bind or delayed, "no bind was delayed: the test tests nothing"
print("ran %d of %d" % (len(ran), 2 * rounds))
"""


@pytest.mark.parametrize("how", ["slow-bind", "plain"])
def test_threads_adopted_as_the_block_exits(driver, how):
    """Threads started just before the exit: each is adopted while the
    session ends, which frees its C tracer.  Bound after that, the tracer
    was freed memory (a crash as the thread exited: every run with the bind
    delayed, most plain runs in ABI mode); the settrace hook read tables the
    teardown had cleared (an AttributeError that killed the thread before
    its target ran).  Both cffi modes: ABI mode releases the GIL around
    every C call."""
    rounds = 50 if how == "slow-bind" else 500
    modes = [{}]
    if mempulse._core.load().mode != "abi":
        modes.append({"MEMPULSE_CFFI": "abi"})
    for env in modes:
        code = "import sys; sys.argv[1:] = [%r, %r]\n" % (str(rounds), how.split("-")[0]) + THREADS_STARTED_AT_EXIT
        status, out, err = run_python(code, timeout=180, env=env)
        assert status == 0, (env, err[-3000:])
        assert "ran %d of %d" % (2 * rounds, 2 * rounds) in out, (env, out, err[-3000:])
        assert "Traceback" not in err and "Exception in thread" not in err, (env, err[-3000:])


TRACE_REMOVED_INSIDE_A_COLLECTION = """
import gc, sys, threading, time
import mempulse


class Cycle(object):
    # Garbage with a finalizer: the collector runs Python code.
    def __init__(self):
        self.me = self

    def __del__(self):
        pass


def f():
    return 1


def worker():
    holder.append(Cycle())
    gc.disable()
    gc.set_threshold(1)
    ready.set()
    # One line: its line event comes while the block runs.  Once the gate
    # opens (the block has ended) the first event is f's call, whose frame
    # object's allocation collects the cycle; the finalizer's call event
    # reaches the thread's trace function, which removes itself.
    gate.acquire(); del holder[:]; gc.enable(); out.append(f())


old = gc.get_threshold()
out = []
try:
    for _ in range(20):
        gate = threading.Lock()
        gate.acquire()
        ready = threading.Event()
        holder = []
        t = threading.Thread(target=worker)
        with mempulse.cMemoryUsageTracer(lambda result: None, 1):
            t.start()
            ready.wait()
            # Until the worker is past its last call before the gate.
            while sys._current_frames().get(t.ident).f_code is not worker.__code__:
                time.sleep(0.001)
            time.sleep(0.01)
        gate.release()
        t.join()
finally:
    gc.enable()
    gc.set_threshold(*old)
print("ran %d" % len(out))
"""


@pytest.mark.skipif(not hasattr(__import__("gc"), "set_threshold"), reason="CPython's collector")
def test_trace_removed_inside_a_collection(driver):
    """A thread's trace function removes itself (its block ended) from a
    call event that a garbage collection's finalizer caused while CPython
    3.11 was making the frame object of another call event: 3.11 then called
    the removed, freed function (a segfault at once, before mempulse kept
    it alive; seen in CI as a rare crash of threads meeting new code)."""
    status, out, err = run_python(TRACE_REMOVED_INSIDE_A_COLLECTION, timeout=120)
    assert status == 0, err[-3000:]
    assert "ran 20" in out, (out, err[-3000:])
    assert "Traceback" not in err and "Exception in thread" not in err, err[-3000:]


def test_exit_while_threads_meet_new_code(driver):
    """300 exits while two traced threads keep calling code never seen
    before: sys.monitoring's end turned every code's events off while those
    threads' callbacks enabled more ("dictionary changed size during
    iteration" from __exit__, about 1 exit in 20)."""
    errors = []
    failures = []

    def fresh_calls(stop):
        try:
            n = 0
            while not stop.is_set():
                namespace = {}
                exec(compile("def f(x):\n    return x + 1\n", "<fresh %d>" % n, "exec"), namespace)
                namespace["f"](n)
                n += 1
        except BaseException as e:  # pragma: no cover - the failure shown
            errors.append(repr(e))

    interval = sys.getswitchinterval() if hasattr(sys, "getswitchinterval") else None
    if interval is not None:
        sys.setswitchinterval(1e-5)  # many thread switches: the race shows sooner
    try:
        for _ in range(300):
            stop = threading.Event()
            threads = [threading.Thread(target=fresh_calls, args=(stop,)) for _ in range(2)]
            try:
                with mempulse.cMemoryUsageTracer(lambda result: None, 3):
                    for t in threads:
                        t.start()
            except Exception as e:  # pragma: no cover - the failure shown
                failures.append(repr(e))
            finally:
                stop.set()
                for t in threads:
                    if t.ident is not None:
                        t.join()
    finally:
        if interval is not None:
            sys.setswitchinterval(interval)
    assert failures == [] and errors == []
    assert mempulse._tracer.current_tracer() is None


# ---- generators ------------------------------------------------------------
def rows():
    yield "header"  # L:rows-header
    for i in range(3):  # L:rows-loop
        yield i


def tally(it):
    total = 0
    for value in it:  # L:tally-loop
        total += value
    return total


def deep(it):
    return next(it)


def middle(it):
    return deep(it)


def test_generator_resumed_below_the_depth(driver):
    """header = next(it); tally(it): no error, both functions' lines recorded."""
    results = []
    with mempulse.cMemoryUsageTracer(results.append, 2):
        it = rows()
        header = next(it)
        total = tally(it)
    assert header == "header" and total == 3
    (result,) = results
    assert record_at(result, line_of("L:tally-loop")).hits == 4
    assert record_at(result, line_of("L:rows-loop")).hits >= 3


def test_generator_first_advanced_too_deep_is_traced_when_resumed_within(driver):
    results = []
    with mempulse.cMemoryUsageTracer(results.append, 1):
        it = rows()
        middle(it)  # first advanced at level 3: not traced
        rest = sum(it)  # resumed by this frame: level 1
    assert rest == 3
    (result,) = results
    assert record_at(result, line_of("L:rows-loop")).hits >= 3
    assert lines_of(result, "deep") == []


def grow(n):
    return len(bytearray(n))  # L:grow


def block_in_a_generator(results):
    with mempulse.cMemoryUsageTracer(results.append, 2):
        yield grow(1 << 20)
        yield grow(2 << 20)  # resumed by another thread
        yield grow(3 << 20)


def test_generator_holding_a_block_resumed_by_another_thread(driver):
    """The block's frame runs a while on a thread that traces nothing: its
    lines there are not this trace's (as under settrace, which is per
    thread), nothing raises, and the result comes once."""
    for _ in range(20):
        results = []
        errors = []
        it = block_in_a_generator(results)
        sizes = [next(it)]

        def resume():
            try:
                sizes.append(next(it))
            except BaseException as e:  # pragma: no cover - the failure itself
                errors.append(e)

        thread = threading.Thread(target=resume)
        thread.start()
        thread.join()
        sizes.append(next(it))
        assert next(it, None) is None
        assert errors == [] and sizes == [1 << 20, 2 << 20, 3 << 20]
        (result,) = results
        assert record_at(result, line_of("L:grow")).hits == 2


def test_tracer_inside_contextmanager_and_exitstack(driver):
    import contextlib

    results = []

    @contextlib.contextmanager
    def traced():
        with mempulse.cMemoryUsageTracer(results.append, 1):
            yield

    for _ in range(3):
        with traced():
            helper_line(1)
        assert mempulse._tracer.current_tracer() is None
    with contextlib.ExitStack() if not PY2 else _NullStack() as stack:
        if not PY2:
            stack.enter_context(mempulse.cMemoryUsageTracer(results.append, 1))
        helper_line(2)
    assert mempulse._tracer.current_tracer() is None
    assert len(results) == (3 if PY2 else 4)


class _NullStack(object):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---- coroutines ------------------------------------------------------------
ASYNC_BLOCK = """
import asyncio, json, sys
import mempulse

results = []

async def handler(n):
    with mempulse.cMemoryUsageTracer(results.append, 1):
        before = bytearray(n)
        await asyncio.sleep(0.001)
        after = bytearray(n)  # L:after-await
    return len(before) + len(after)

async def other():
    for i in range(50):
        await asyncio.sleep(0)

async def main():
    other_task = asyncio.ensure_future(other())
    total = await handler(1 << 20)
    await other_task
    return total

total = asyncio.run(main())
marked = [i for i, text in enumerate(open(__file__).read().splitlines(), 1) if "L:after-await" in text]
print(json.dumps({"total": total, "results": len(results),
                  "lines": sorted(r.lineno for r in results[0])}))
"""


def _script(tmpdir, name, text):
    path = os.path.join(str(tmpdir), name)
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.mark.skipif(not HAVE_ASYNCIO_RUN, reason="asyncio.run needs 3.7+")
def test_with_block_inside_a_coroutine_across_await(driver, tmpdir):
    import json
    import subprocess

    path = _script(tmpdir, "block_across_await.py", ASYNC_BLOCK)
    env = dict(os.environ)
    out = subprocess.check_output([sys.executable, path], env=env, timeout=120)
    data = json.loads(out.decode())
    assert data["total"] == 2 << 20 and data["results"] == 1
    assert line_of("L:after-await", path) in data["lines"]


DEEP_CANCEL = """
import asyncio, sys
import mempulse

async def worker(i):
    try:
        for k in range(100):
            await asyncio.sleep(0.0005)
    except asyncio.CancelledError:
        raise

async def main():
    tasks = [asyncio.ensure_future(worker(i)) for i in range(8)]
    await asyncio.sleep(0.005)
    for t in tasks[::2]:
        t.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    return sum(isinstance(d, asyncio.CancelledError) for d in done)

results = []
for depth in (12, 30):
    with mempulse.cMemoryUsageTracer(results.append, depth):
        cancelled = asyncio.run(main())
    assert cancelled == 4, cancelled
print("ok %d %s" % (len(results), len(results[0]) > 0))
"""


@pytest.mark.skipif(not HAVE_ASYNCIO_RUN, reason="asyncio.run needs 3.7+")
def test_asyncio_deep_with_cancellation_finishes(driver):
    status, out, err = run_python(DEEP_CANCEL, timeout=180)
    assert status == 0, err
    assert out.split() == ["ok", "2", "True"], (out, err)


# ---- exceptions --------------------------------------------------------------
def recurse(n):
    return recurse(n + 1)


def test_recursion_error_caught_inside_block(driver, recwarn):
    results = []
    with mempulse.cMemoryUsageTracer(results.append, 1):
        try:
            recurse(0)
        except RecursionError if not PY2 else RuntimeError:
            pass
        after = helper_line(1)  # L:after-recursion
    assert after == 2
    assert sys.gettrace() is None
    (result,) = results
    recorded = [r for r in result if r.lineno == line_of("L:after-recursion")]
    if driver == "sysmon":
        assert recorded
    elif not recorded:
        # CPython dropped the trace function: mempulse says so on exit.
        assert any("tracing of this thread stopped" in str(w.message) for w in recwarn.list)
        assert result.metadata["warnings"]


def test_exceptions_caught_inside_keep_tracing(driver):
    results = []

    def fails():
        raise ValueError("x")

    with mempulse.cMemoryUsageTracer(results.append, 2):
        for _ in range(20):
            try:
                fails()
            except ValueError:
                pass
        after = 1  # L:after-caught
    assert after == 1
    assert record_at(results[0], line_of("L:after-caught")).hits == 1


KEYBOARD_INTERRUPTS = """
import random, sys, threading, time
try:
    import _thread
except ImportError:
    import thread as _thread
import mempulse

def leaf(x):
    return x * 2

def work():
    total = 0
    t0 = time.time()
    while time.time() - t0 < 0.004:
        total += leaf(1)
    return total

cls = mempulse.MemoryUsageTracer if sys.argv[-1] == "psutil" else mempulse.cMemoryUsageTracer
cls(lambda r: None, 1)  # imports psutil here, not where an interrupt may cut it short
random.seed(4)
interrupted = calls = 0
def absorb_late_interrupts():
    for _ in range(3):
        try:
            time.sleep(0.01)
        except KeyboardInterrupt:
            pass

for i in range(200):
    timer = threading.Timer(random.uniform(0, 0.005), _thread.interrupt_main)
    try:
        try:
            timer.start()
            with cls(lambda r: None, 2):
                work()
            calls += 1
            time.sleep(0.006)
        finally:
            timer.cancel()
            timer.join()
    except KeyboardInterrupt:
        interrupted += 1
    absorb_late_interrupts()
# The next tracer works (one whose __exit__ an interrupt skipped is
# discarded), and leaves nothing behind.
results = []
with cls(results.append, 1):
    x = leaf(3)
assert any(r.function == "<module>" for r in results[0]), results
assert mempulse._tracer.current_tracer() is None
assert sys.gettrace() is None
if hasattr(sys, "monitoring"):
    # Between blocks mempulse may keep its tool id, with its global events
    # only; the last block's codes stay warm until code runs outside blocks
    # (leaf, here), then no local event is left on any code.
    from mempulse import _sysmon
    m = sys.monitoring
    for _ in range(_sysmon._OUTSIDE_EVENTS):
        leaf(0)
    assert m.get_tool(2) is None
    assert all(m.get_tool(t) in (None, "mempulse") and m.get_events(t) in (0, _sysmon._GLOBAL_EVENTS if _sysmon._EVENTS_STAY_ON else 0) for t in (3, 4))
    assert not _sysmon._monitor.codes
print("ok %d %d" % (interrupted, calls))
"""


@pytest.mark.parametrize("sampler", ["c", "psutil"])
def test_keyboard_interrupt_at_random_moments_leaves_interpreter_sound(driver, sampler):
    if sampler == "psutil":
        pytest.importorskip("psutil")
    code = KEYBOARD_INTERRUPTS.replace("sys.argv[-1]", repr(sampler))
    status, out, err = run_python(code, timeout=240)
    assert status == 0, err[-3000:]
    words = out.split()
    assert words[0] == "ok", (out, err)
    assert int(words[1]) > 0  # interrupts did land


# ---- one tracer, two threads ------------------------------------------------
def test_one_tracer_entered_from_two_threads(driver):
    """One of the two gets 'already in use'; repeated, no crash or leak."""
    for _ in range(100):
        tracer = mempulse.cMemoryUsageTracer(lambda r: None, 1)
        barrier = threading.Barrier(2) if not PY2 else None
        outcomes = []

        def enter():
            if barrier is not None:
                barrier.wait()
            try:
                with tracer:
                    helper_line(1)
                outcomes.append("ok")
            except RuntimeError as e:
                outcomes.append(str(e))

        threads = [threading.Thread(target=enter) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert "ok" in outcomes
        assert all(o in ("ok", "this tracer is already in use") for o in outcomes), outcomes


def test_two_threads_with_their_own_tracers_on_one_function(driver):
    results = {0: [], 1: []}
    barrier = threading.Barrier(2) if not PY2 else None

    def run(i):
        if barrier is not None:
            barrier.wait()
        with mempulse.cMemoryUsageTracer(results[i].append, 1):
            for _ in range(200):
                helper_line(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in (0, 1):
        (result,) = results[i]
        assert [r.hits for r in result if r.function == "helper_line"] == [200], result


def test_thread_started_by_an_untraced_thread_is_not_adopted(driver):
    go = threading.Event()
    own_results = []
    main_results = []
    started = []

    def adopted_or_not():
        with mempulse.cMemoryUsageTracer(own_results.append, 1):
            helper_line(5)

    def launcher():
        go.wait()
        t = threading.Thread(target=adopted_or_not)
        t.start()
        started.append(t)
        t.join()

    lt = threading.Thread(target=launcher)
    lt.start()
    with mempulse.cMemoryUsageTracer(main_results.append, 2):
        go.set()
        lt.join()
    assert len(own_results) == 1
    assert [r.hits for r in own_results[0] if r.function == "helper_line"] == [1]
    assert not [r for r in main_results[0] if r.function in ("adopted_or_not", "helper_line")]


def test_thread_started_inside_is_traced_once_and_its_profile_works(driver):
    results = []
    tables = []

    @mempulse.profile(callback=tables.append)
    def handler():
        return helper_line(1)

    def run():
        handler()

    with mempulse.cMemoryUsageTracer(results.append, 2):
        t = threading.Thread(target=run)
        t.start()
        t.join()
    # The thread was adopted: the outer trace sees handler, @profile stays quiet.
    assert [r.function for r in results[0] if r.function == "handler"]
    assert tables == []
    # Outside any block, the same thread shape gets its own table.
    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert len(tables) == 1


def test_profile_under_a_thread_pool(driver):
    pytest.importorskip("concurrent.futures")
    from concurrent.futures import ThreadPoolExecutor

    tables = []

    @mempulse.profile(callback=tables.append)
    def handle(n):
        data = bytearray(n)  # L:pool-handler
        return len(data)

    with ThreadPoolExecutor(4) as pool:
        sizes = list(pool.map(handle, [1024] * 40))
    assert sizes == [1024] * 40
    assert len(tables) == 40
    for table in tables:
        assert record_at(table, line_of("L:pool-handler")).hits == 1


# ---- nesting ---------------------------------------------------------------------
def test_user_tracer_nested_in_an_own_call_trace(driver):
    from mempulse import _own_call

    outer_results, inner_results = [], []

    def test_body():
        with mempulse.cMemoryUsageTracer(inner_results.append, 1):
            helper_line(1)
        return helper_line(2)

    outer = _own_call.tracer_for_call(outer_results.append, 1, steps_aside=True)
    with outer:
        test_body()
    assert len(inner_results) == 1 and len(outer_results) == 1
    assert [r.hits for r in inner_results[0] if r.function == "<module>" or r.function == "test_body"]
    assert any(r.function == "test_body" for r in outer_results[0])


def test_user_tracers_do_not_nest(driver):
    with mempulse.cMemoryUsageTracer(lambda r: None, 1):
        with pytest.raises(RuntimeError, match="already active"):
            with mempulse.cMemoryUsageTracer(lambda r: None, 1):
                pass


# ---- equal code objects, loops ------------------------------------------------
@pytest.mark.skipif(sys.version_info < (3, 7), reason="dataclasses need 3.7+")
def test_equal_code_objects_are_told_apart(driver):
    import dataclasses
    import gc
    import weakref

    # make_dataclass: class bodies with annotations are a syntax error on 2.7.
    A = dataclasses.make_dataclass("A", ["x", "y"])
    B = dataclasses.make_dataclass("B", ["x", "y"])

    assert A.__init__.__code__ == B.__init__.__code__  # equal, not identical
    alive = []

    def make(cls):
        obj = cls(bytearray(MiB), 1)
        alive.append(weakref.ref(obj))
        return obj.y

    results = []
    with mempulse.cMemoryUsageTracer(results.append, 2):
        for _ in range(100):
            make(A)
            make(B)
        marker = helper_line(7)  # L:after-dataclasses
    gc.collect()
    assert [r for r in alive if r() is not None] == []
    result = results[0]
    assert record_at(result, line_of("L:after-dataclasses")).function == "test_equal_code_objects_are_told_apart"
    assert marker == 8


def test_one_line_loop_hits_match_settrace(driver):
    results = []
    with mempulse.cMemoryUsageTracer(results.append, 1):
        total = 0
        for i in range(100): total += i  # L:one-line-loop
    assert total == 4950
    assert record_at(results[0], line_of("L:one-line-loop")).hits == 101


def program_for_comparison():
    # No one-line comprehension: sys.monitoring counts its line once (a
    # callback per item would cost what the comprehension does), settrace
    # once per item.
    data = []
    for _ in range(50):
        data.append(bytearray(4096))
    total = 0
    for chunk in data:
        total += len(chunk)
    words = sorted(map(str, range(30)))
    return total + len(words) + helper_line(2)


@pytest.mark.skipif(not hasattr(sys, "monitoring"), reason="needs both drivers")
def test_both_drivers_record_the_same_lines_and_hits(monkeypatch):
    shapes = {}
    for name in ("settrace", "sysmon"):
        use_driver(monkeypatch, name)
        results = []
        with mempulse.cMemoryUsageTracer(results.append, 3):
            program_for_comparison()
        shapes[name] = sorted((r.filename, r.lineno, r.function, r.hits) for r in results[0])
    assert shapes["settrace"] == shapes["sysmon"]


def test_huge_line_numbers_do_not_raise(driver):
    if not hasattr(helper_line.__code__, "replace"):
        pytest.skip("code.replace needs 3.8+")
    namespace = {}
    exec("def far():\n    a = 1\n    return a\n", namespace)
    far = namespace["far"]
    far.__code__ = far.__code__.replace(co_firstlineno=2 ** 31 - 2)
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to say: such a line is just not recorded
        with mempulse.cMemoryUsageTracer(results.append, 1):
            value = far()
    assert value == 1
    assert len(results) == 1
    # The next line, 2**31, is past what C holds: 3.11 says None, 3.12+
    # an int C refuses (both unrecorded), 3.8 and 3.9 wrap it to -2**31.
    assert 2 ** 31 - 1 in [r.lineno for r in results[0] if r.function == "far"]


# ---- coexistence -----------------------------------------------------------------
def test_previous_settrace_function_restored_and_replacement_warned(monkeypatch):
    use_driver(monkeypatch, "settrace")
    seen = []

    def debugger(frame, event, arg):
        seen.append(event)
        return None

    def intruder(frame, event, arg):
        return None

    sys.settrace(debugger)
    try:
        with pytest.warns(RuntimeWarning, match="sys.settrace"):
            with mempulse.cMemoryUsageTracer(lambda r: None, 1):
                sys.settrace(intruder)
                helper_line(1)
        assert sys.gettrace() is debugger
    finally:
        sys.settrace(None)


@pytest.mark.skipif(not hasattr(sys, "monitoring"), reason="cProfile uses sys.monitoring on 3.12+")
def test_cprofile_inside_a_block():
    import cProfile
    import pstats

    results = []
    with mempulse.cMemoryUsageTracer(results.append, 1):
        profiler = cProfile.Profile()
        profiler.enable()
        helper_line(1)
        profiler.disable()
    stats = pstats.Stats(profiler)
    assert any(key[2] == "helper_line" for key in stats.stats)
    assert results[0]
    assert_no_monitoring_left(helper_line)


@pytest.mark.skipif(not hasattr(sys, "monitoring"), reason="sys.monitoring only")
def test_nothing_is_kept_after_exit():
    import gc
    import weakref

    class Callback(object):
        def __call__(self, result):
            pass

    callback = Callback()
    ref = weakref.ref(callback)
    tracer = mempulse.cMemoryUsageTracer(callback, 2)
    with tracer:
        helper_line(1)
    del callback, tracer
    gc.collect()
    assert ref() is None
    assert_no_monitoring_left(helper_line)


class Touchy(object):
    """A callable whose missing attributes are noticed (a proxy, a mock)."""

    asked = []

    def __getattr__(self, name):
        Touchy.asked.append(name)
        raise AttributeError(name)

    def __call__(self):
        return 1


def too_deep_chain(n):
    return helper_line(n)


def test_a_callable_is_not_asked_for_attributes(tracer_class, driver):
    """Whether a callee's start was disabled is decided from types alone:
    no attribute of the called object is read inside a callback."""
    results = []
    touchy = Touchy()
    del Touchy.asked[:]
    with tracer_class(results.append, 1):
        too_deep_chain(1)  # something below the depth is disabled
        total = touchy() + touchy()
    assert total == 2
    assert Touchy.asked == []
    assert results[0]


CODE_RUN_BETWEEN_BLOCKS = """
import mempulse

class Lazy(object):
    @property
    def blob(self):
        return bytearray(4 << 20)  # L:property-body

def key_of(value):
    kept = bytearray(1 << 20)  # L:key-body
    return len(kept) + value

results = []
with mempulse.%s(results.append, 1):
    pass  # the driver is set up: what follows runs between blocks
Lazy().blob
sorted([2, 1], key=key_of)
results = []
with mempulse.%s(results.append, 2):
    first = Lazy().blob
    order = sorted([3, 2, 1], key=key_of)
print(sorted(set((r.function, r.hits) for r in results[0] if r.function in ("blob", "key_of"))))
"""


def test_code_run_between_blocks_is_traced_where_no_call_shows_it(tracer_class, driver):
    """A property and a sort key run outside any block first (sys.monitoring
    disables their start there), then inside one: their lines are recorded."""
    name = tracer_class.__name__
    status, out, err = run_python(CODE_RUN_BETWEEN_BLOCKS % (name, name))
    assert status == 0, err
    assert out.strip() == "[('blob', 1), ('key_of', 3)]", (out, err)


CALL_SITES = """
import mempulse

def plain(x):
    return x + 1

def run_outside(x):
    kept = bytearray(1 << 20)
    return len(kept) + x

def later(x):
    kept = bytearray(1 << 20)
    return len(kept) + x

def by_local_name(handlers):
    total = 0
    for handler in handlers:
        total += handler(1)  # the callee changes at this site
    return total

def by_global_name(n):
    total = 0
    for _ in range(n):
        total += target(1)  # this one calls what the global names
    return total

def hits(result):
    return sorted(set((r.function, r.hits) for r in result if r.function in ("plain", "run_outside", "later")))

def ignore(result):
    pass

target = plain
for _ in range(3):
    # Between blocks sys.monitoring disables their starts; the block after
    # the first restarts once for them, later ones do not.
    with mempulse.%(tracer)s(ignore, 1):
        pass
    run_outside(0); later(0)
results = []
with mempulse.%(tracer)s(results.append, 2):
    by_global_name(50)
    by_local_name([plain] * 50 + [run_outside] * 2)
target = later  # still disabled: only the CALL event of this site can turn it on
with mempulse.%(tracer)s(results.append, 2):
    by_global_name(3)
print(hits(results[0]))
print(hits(results[1]))
"""


def test_every_callee_of_a_call_site_is_traced(tracer_class, driver):
    """sys.monitoring turns off the CALL event of a site that calls a global
    name's function once its start is sure to fire; a site whose callee
    changes (a local name) keeps it, and the next block starts with every
    site on.  Callees disabled between blocks are traced at either kind."""
    status, out, err = run_python(CALL_SITES % {"tracer": tracer_class.__name__})
    assert status == 0, err
    first, second = out.strip().splitlines()
    assert first == "[('plain', 100), ('run_outside', 2)]", (out, err)
    assert second == "[('later', 3)]", (out, err)


@pytest.mark.skipif(not hasattr(sys, "monitoring"), reason="sys.monitoring only")
def test_global_call_sites_are_found_only_where_sure():
    from mempulse import _bytecode

    namespace = {}
    source = (
        "def calls(x, obj, local):\n"
        "    a(x)\n"  # 2: found
        "    b(x, 1, key=x)\n"  # 3: found
        "    c()\n"  # 4: found
        "    obj.method(x)\n"  # 5: an attribute: not
        "    local(x)\n"  # 6: a local name: not
        "    d(e(x))\n"  # 7: e found, d not (its argument is a call)
        "    f(x if x else obj)\n"  # 8: a branch among the arguments: not
        "    g(*x)\n"  # 9: not (no CALL event before 3.13)
    )
    exec(compile(source, "<calls>", "exec"), namespace)
    code = namespace["calls"].__code__
    import dis

    lines = {}
    for instruction in dis.get_instructions(code):
        if instruction.offset in _bytecode.global_call_sites(code):
            line = instruction.positions.lineno
            lines.setdefault(line, []).append(instruction.opname)
    assert sorted(lines) == [2, 3, 4, 7]
    assert len(lines[7]) == 1


# CPython 3.13 allows 2**24 - 1 changes of monitoring events per process
# (set_events, restart_events, each sys.settrace that turns tracing on or
# off); then every tool's set_events, and sys.settrace, raise OverflowError.
# A consumer tool spends them in pairs; 8,388,607 pairs leave none.
SPEND_EVENT_CHANGES = """
import sys
m = sys.monitoring
m.use_tool_id(0, "consumer")

def spend(pairs):
    for _ in range(pairs):
        m.set_events(0, m.events.PY_START)
        m.set_events(0, 0)

def spend_all():
    try:
        spend(8388607 + 1)
    except OverflowError:
        pass
"""


def _handler_lines():
    return """
import mempulse

def leaf(n):
    data = [n] * 100
    return len(data)

def handler(i):
    total = leaf(i)
    total += leaf(i + 1)
    return total

def block(results, depth=2):
    with mempulse.cMemoryUsageTracer(results.append, depth):
        handler(1)
"""


# ---- 3.13+: the last block's codes stay warm between blocks ----------------
WARM = pytest.mark.skipif(sys.version_info < (3, 13), reason="3.13+ keeps codes warm between blocks")


def warm_leaf(x):
    y = x * 2  # warm 1
    return y + 1  # warm 2


def local_events(function):
    from mempulse import _sysmon

    tool = _sysmon._monitor.tool
    return 0 if tool is None else sys.monitoring.get_local_events(tool, function.__code__)


@WARM
def test_codes_stay_warm_until_they_run_outside_blocks(tracer_class, monkeypatch):
    """A leaf traced by a block keeps its local events for the next block
    (which then sets none: setting them re-instruments the code each way),
    and goes back to none once it runs outside blocks; every block records
    its lines."""
    use_driver(monkeypatch, "sysmon")
    from mempulse import _sysmon

    lines = [line_of("warm 1"), line_of("warm 2")]
    results = []
    for _ in range(3):
        with tracer_class(results.append, 1):
            warm_leaf(1)
        assert _sysmon._monitor.warm and not _sysmon._monitor.idle
        assert local_events(warm_leaf) & sys.monitoring.events.LINE
    for _ in range(_sysmon._OUTSIDE_EVENTS):
        warm_leaf(0)
    assert _sysmon._monitor.idle and not _sysmon._monitor.warm
    assert local_events(warm_leaf) == 0 and not _sysmon._monitor.codes
    with tracer_class(results.append, 1):
        warm_leaf(2)
    for result in results:
        assert lines_of(result, "warm_leaf") == lines, result
        assert record_at(result, lines[0]).hits == 1
    assert_no_monitoring_left(warm_leaf)


def _block_then_loop(tracer_class, results, n, one_line):
    with tracer_class(results.append, 1):
        total = warm_leaf(1)
    # This function is warm after its block: its lines and loop jumps run
    # outside any block until the tool goes idle.
    if one_line:
        for i in range(n): total += i  # noqa: E701 - a one-line loop: JUMP events, no LINE per iteration
    else:
        for i in range(n):
            total += i
    return total


@WARM
@pytest.mark.parametrize("one_line", [False, True], ids=["loop", "one-line-loop"])
def test_a_warm_root_looping_after_its_block_goes_idle(tracer_class, monkeypatch, one_line):
    """The function that entered the block runs a loop after it (no call,
    no return: only its lines, or a one-line loop's jumps): after 64 of
    them the tool is idle and the function has no events left."""
    use_driver(monkeypatch, "sysmon")
    from mempulse import _sysmon

    results = []
    _block_then_loop(tracer_class, results, 1000, one_line)
    assert _sysmon._monitor.idle and not _sysmon._monitor.warm
    assert local_events(_block_then_loop) == 0 and local_events(warm_leaf) == 0
    assert lines_of(results[0], "warm_leaf") == [line_of("warm 1"), line_of("warm 2")]


def _warm_leaf_source():
    return "def made(x):\n    y = x * 3  # made 1\n    return y  # made 2\n"


REBOUND_CALLEES = """
import mempulse

def plain(x):
    return x + 1

def other(x):
    kept = bytearray(1 << 20)  # other
    return len(kept) + x

def replacement(x):
    kept = bytearray(1 << 20)  # replacement
    return len(kept) + x

def mylen(x):
    kept = bytearray(1 << 20)  # mylen
    return 1

def calls_target(n):
    total = 0
    for _ in range(n):
        total += target(1)  # a global name's function
    return total

def calls_len(n):
    total = 0
    for _ in range(n):
        total += len("ab")  # a builtin, until a global shadows it
    return total

def calls_plain(n):
    total = 0
    for _ in range(n):
        total += plain(1)  # plain's __code__ is replaced later
    return total

def block(results):
    with mempulse.%(tracer)s(results.append, 2):
        calls_target(5)
        calls_len(5)
        calls_plain(5)

def seen(result):
    return sorted(set(r.function for r in result if r.function in ("other", "replacement", "mylen")))

target = plain
results = []
seen([])  # run once now: between the last two blocks only known code runs
for _ in range(3):
    block(results)  # the sites are turned off; the codes stay warm
other(0); replacement(0); mylen(0)  # started between blocks: disabled, news
block(results)  # so this block restarts the events once (all on again)
other(0); replacement(0); mylen(0)  # disabled again, no news: no restart
target = other  # rebound
len = mylen  # a builtin shadowed
plain.__code__ = replacement.__code__  # the same function, another code
block(results)
print(seen(results[3]))
print(seen(results[4]))
"""


@WARM
def test_a_warm_call_site_notices_its_callee_change(tracer_class):
    """A warm code keeps a global name's call site turned off across
    blocks while the name still calls the same function; a name rebound,
    a builtin shadowed by a global, a function given another code, each to
    code disabled between blocks: the next block traces it."""
    status, out, err = run_python(REBOUND_CALLEES % {"tracer": tracer_class.__name__})
    assert status == 0, err
    before, after = out.strip().splitlines()
    assert before == "[]", (out, err)
    assert after == "['mylen', 'other', 'replacement']", (out, err)


@WARM
def test_a_warm_code_that_dies_is_forgotten(tracer_class, monkeypatch):
    """Codes made and dropped between blocks (exec'd per block, ids reused):
    each block records its own code's lines, and no dead code's events or
    id stay behind."""
    use_driver(monkeypatch, "sysmon")
    from mempulse import _sysmon
    import gc

    results = []
    for round_ in range(50):
        namespace = {}
        exec(compile(_warm_leaf_source(), "<made %d>" % (round_ % 3), "exec"), namespace)
        with tracer_class(results.append, 1):
            namespace["made"](round_)
        key = id(namespace["made"].__code__)
        assert key in _sysmon._monitor.codes
        del namespace
        gc.collect()
        assert key not in _sysmon._monitor.codes and key not in _sysmon._monitor.enabled
    for round_, result in enumerate(results):
        made = sorted(r.lineno for r in result if r.function == "made")
        assert made == [2, 3], (round_, result)
        assert all(r.filename == "<made %d>" % (round_ % 3) for r in result if r.function == "made")


@WARM
def test_warm_code_run_by_other_threads_between_blocks(tracer_class, monkeypatch):
    """Two threads run a warm leaf outside any block while this thread runs
    200 blocks that trace it: no error in any thread, every block has the
    leaf's lines, and the tool ends idle once the blocks stop."""
    use_driver(monkeypatch, "sysmon")
    errors = []
    stop = threading.Event()

    def spin():
        try:
            while not stop.is_set():
                warm_leaf(0)
        except BaseException as e:  # pragma: no cover - the failure shown
            errors.append(repr(e))

    threads = [threading.Thread(target=spin) for _ in range(2)]
    for thread in threads:
        thread.start()
    results = []
    try:
        for i in range(200):
            with tracer_class(results.append, 1):
                warm_leaf(i)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors
    lines = [line_of("warm 1"), line_of("warm 2")]
    for result in results:
        assert lines_of(result, "warm_leaf") == lines, result
    assert_no_monitoring_left(warm_leaf)


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.12 has no limit (and turns events off between blocks)")
def test_blocks_spend_no_event_changes():
    """3000 blocks with 1,000 event changes left: each is traced, and
    sys.settrace still works after (the per-block toggling spent two each)."""
    code = SPEND_EVENT_CHANGES + _handler_lines() + """
import warnings
warnings.simplefilter("error")
spend(8388607 - 500)
for i in range(3000):
    results = []
    block(results)
    functions = set(r.function for r in results[0])
    assert functions == set(["block", "handler", "leaf"]), (i, functions)
sys.settrace(lambda *a: None)
sys.settrace(None)
print("ok")
"""
    status, out, err = run_python(code, timeout=300)
    assert (status, out.strip()) == (0, "ok"), err


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.12 has no limit")
def test_no_event_changes_left_warns_and_runs_the_block(driver):
    """Every change spent before the first block: it runs, untraced, says so."""
    code = SPEND_EVENT_CHANGES + _handler_lines() + """
import warnings
spend_all()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    results = []
    block(results)
    ran = handler(2)
print(ran, len(results), [str(w.message) for w in caught])
"""
    status, out, err = run_python(code, timeout=300)
    assert status == 0, err
    assert out.startswith("200 1 "), out
    assert "refused to trace (OverflowError" in out, out
    assert "Exception ignored" not in err, err


# ---- fork ------------------------------------------------------------------------
pytestmark_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

FORK_CHILD = """
import json, os, sys, time
from conftest import touched, MiB
import mempulse

def read_hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

def child_work(report_fd):
    assert mempulse._tracer.current_tracer() is None
    results = []
    with mempulse.cMemoryUsageTracer(results.append, 1):
        block = touched(100 * MiB)  # the child's own allocation
        block.close()
    parent = os.getppid()
    foreign = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith("/proc/%d/" % parent):
            foreign.append(target)
    increments = [max(r.increment for r in results[0])]
    os.write(report_fd, json.dumps({"foreign": foreign, "increments": increments}).encode())

results = []
with mempulse.cMemoryUsageTracer(results.append, 1):
    spike = touched(300 * MiB)
    spike.close()  # the parent's peak: 300 MiB above here
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            child_work(w)
        finally:
            os._exit(0)
    os.close(w)
    report = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        report += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    after_child = read_hwm()
print(json.dumps({"child": json.loads(report.decode()), "status": status,
                  "records": len(results[0]) if results else 0}))
"""


@pytestmark_fork
def test_fork_inside_a_block(driver):
    import json

    status, out, err = run_python(FORK_CHILD, timeout=180)
    assert status == 0, err
    data = json.loads(out.strip().splitlines()[-1])
    assert data["status"] == 0
    assert data["child"]["foreign"] == []
    assert data["child"]["increments"] and data["child"]["increments"][0] >= 90 * MiB
    assert data["records"] > 0


FORK_WITH_THREAD = """
import os, sys, threading, time
import mempulse

def busy(stop):
    x = 0
    while not stop.is_set():
        x += 1
        x -= 1

hung = 0
for round_ in range(20):
    stop = threading.Event()
    with mempulse.cMemoryUsageTracer(lambda r: None, 2):
        t = threading.Thread(target=busy, args=(stop,))
        t.start()
        time.sleep(0.002)
        pid = os.fork()
        if pid == 0:
            y = sum(range(1000))
            os._exit(0 if y else 1)
        deadline = time.time() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.time() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                hung += 1
                break
            time.sleep(0.005)
        stop.set()
        t.join()
print("hung %d" % hung)
"""


@pytestmark_fork
def test_fork_while_a_traced_thread_runs_never_deadlocks(driver):
    status, out, err = run_python(FORK_WITH_THREAD, timeout=600)
    assert status == 0, err
    assert out.split() == ["hung", "0"]


MULTIPROCESSING_FORK = """
import multiprocessing, sys
import mempulse

def square(x):
    data = bytearray(1 << 20)
    return x * x + len(data) - len(data)

if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    results = []
    with mempulse.cMemoryUsageTracer(results.append, 1):
        pool = ctx.Pool(2)
        squares = pool.map(square, range(8))
        pool.close()
        pool.join()
    assert squares == [x * x for x in range(8)], squares
    print("ok %d" % len(results))
"""


@pytestmark_fork
@pytest.mark.skipif(sys.version_info < (3, 4), reason="get_context needs 3.4+")
def test_multiprocessing_fork_inside_a_block(driver):
    status, out, err = run_python(MULTIPROCESSING_FORK, timeout=180)
    assert status == 0, err
    assert out.split() == ["ok", "1"], (out, err)


# ---- no side effects without a trace ----------------------------------------
NO_SIDE_EFFECTS = """
import os, sys
sys.path.insert(0, os.getcwd())
from conftest import touched, MiB

def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])


def open_files():
    # What each fd points at; the directory listing's own fd is gone by then.
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add((fd, os.readlink("/proc/self/fd/" + fd)))
        except OSError:
            pass
    return found

spike = touched(200 * MiB)
spike.close()
try:
    import psutil  # its own import may open files (PyPy): not mempulse's doing
    psutil.Process().memory_info()
except ImportError:
    pass
import gc
gc.collect()
before_fds = open_files()
before = hwm()
import mempulse
t = mempulse.cMemoryUsageTracer(lambda r: None, 1)
try:
    p = mempulse.MemoryUsageTracer(lambda r: None, 1)
except ImportError:
    pass

@mempulse.profile
def f():
    return 1

gc.collect()  # PyPy closes what it closes at collections
after = hwm()
loaded = sorted(m for m in sys.modules if m in ("mempulse._api", "mempulse._ffi"))
fds = open_files()
print("%s %s %s" % (before == after, fds == before_fds, loaded))
"""


def test_no_side_effects_without_a_trace():
    status, out, err = run_python(NO_SIDE_EFFECTS, timeout=120)
    assert status == 0, err
    same_peak, same_fds, loaded = out.split(" ", 2)
    assert same_peak == "True", "constructing or decorating reset the peak"
    assert same_fds == "True", "constructing or decorating left a file open"
    if sys.version_info >= (3, 7):
        assert loaded.strip() == "[]", "the compiled core was loaded before any trace"
