"""Threads started inside a traced block are traced too."""
import sys
import threading

from conftest import MiB, line_of, record_at, touched

import pytest

import mempulse

# Every test here runs under each driver (sys.settrace; sys.monitoring on 3.12+).
pytestmark = pytest.mark.usefixtures("driver")

THREADING_FILE = getattr(threading.Thread.run, "__func__", threading.Thread.run).__code__.co_filename


def worker(kept, ready):
    kept.append(touched(16 * MiB))  # L:worker-alloc
    ready.set()  # L:worker-ready


class Worker(threading.Thread):
    def __init__(self, kept):
        threading.Thread.__init__(self)
        self.kept = kept

    def run(self):
        self.kept.append(touched(8 * MiB))  # L:subclass-run


def test_thread_lines_are_recorded_and_merged(tracer_class):
    results = []
    kept = []
    with tracer_class(results.append, 1):
        threads = [threading.Thread(target=worker, args=(kept, threading.Event())) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()  # L:join
    result = results[0]
    alloc = record_at(result, line_of("L:worker-alloc"))
    # One record for the line, summed over the three threads.
    assert alloc.hits == 3
    assert alloc.increment >= 3 * 16 * MiB - 4 * MiB
    assert record_at(result, line_of("L:worker-ready")).hits == 3
    assert record_at(result, line_of("L:join")).hits == 3
    for m in kept:
        m.close()


def test_thread_depth_starts_at_the_target(tracer_class):
    """A thread's target (or overridden run) is level 1, like a call from the block."""
    results = []
    kept = []
    with tracer_class(results.append, 1):
        t = Worker(kept)
        t.start()
        t.join()
    record = record_at(results[0], line_of("L:subclass-run"))
    assert record.hits == 1 and record.increment >= 7 * MiB
    # The thread's own machinery (Thread.run, _bootstrap_inner) is never recorded.
    bootstrap = ("run", "_bootstrap", "_bootstrap_inner")
    assert not [
        r for r in results[0] if r.filename == THREADING_FILE
        and r.function in bootstrap
    ]
    kept[0].close()


def test_thread_still_running_at_exit_is_cut_off_cleanly(tracer_class):
    results = []
    release = threading.Event()
    started = threading.Event()

    def waiter():
        started.set()  # L:waiter-started
        release.wait()
        for i in range(1000):  # L:waiter-after
            x = i

    with tracer_class(results.append, 1):
        t = threading.Thread(target=waiter)
        t.start()
        started.wait()
    # The thread's lines up to the exit are in the result; it goes on untraced.
    assert record_at(results[0], line_of("L:waiter-started")).hits == 1
    release.set()
    t.join()
    assert not [r for r in results[0] if r.lineno == line_of("L:waiter-after")]
    assert sys.gettrace() is None


def test_a_traced_thread_refuses_a_second_tracer(tracer_class):
    errors = []

    def nested():
        try:
            with tracer_class(lambda r: None, 1):
                pass
        except RuntimeError as e:
            errors.append(e)

    with tracer_class(lambda r: None, 1):
        t = threading.Thread(target=nested)
        t.start()
        t.join()
    assert len(errors) == 1


def test_threads_started_after_exit_are_not_traced(tracer_class):
    results = []
    seen = []
    with tracer_class(results.append, 1):
        pass
    t = threading.Thread(target=lambda: seen.append(sys.gettrace()))
    t.start()
    t.join()
    assert seen == [None]
    assert mempulse._tracer.current_tracer() is None
