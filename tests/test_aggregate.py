"""mempulse.Profile and @profile(aggregate=True): every call merged in C, real memory, real threads."""
import io
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from conftest import MiB, line_of, record_at, touched

import mempulse
from mempulse import _core

pytestmark = pytest.mark.usefixtures("driver")

KEPT = []


def test_calls_are_merged_hits_and_increments_add_up(tracer_class):
    prof = mempulse.Profile(tracer=tracer_class)

    @prof.trace
    def grow():
        small = [0] * 10  # L:small
        KEPT.append(touched(2 * MiB))  # L:grow
        return small

    for _ in range(5):
        grow()
    result = prof.result()
    assert result.metadata["calls"] == 5 and result.metadata["aggregate"] is True
    assert record_at(result, line_of("L:grow")).hits == 5
    assert record_at(result, line_of("L:grow")).increment >= 9 * MiB
    assert record_at(result, line_of("L:small")).hits == 5
    assert grow.profile is prof
    for m in KEPT:
        m.close()
    del KEPT[:]


def test_block_and_decorator_share_one_profile_and_reset_forgets(tracer_class):
    prof = mempulse.Profile(tracer=tracer_class)

    @prof.trace
    def work():
        return [1] * 100  # L:work

    with prof.trace():
        work()  # L:block
    work()
    result = prof.result()
    assert result.metadata["calls"] == 2
    assert record_at(result, line_of("L:block")).hits == 1
    # In the block, work() is level 1: recorded there as in the decorated call.
    assert record_at(result, line_of("L:work")).hits == 2
    prof.reset()
    assert list(prof.result()) == [] and prof.result().metadata["calls"] == 0
    work()
    assert record_at(prof.result(), line_of("L:work")).hits == 1


def test_memory_grows_with_callsites_not_calls():
    prof = mempulse.Profile()

    @prof.trace
    def handler(n):
        a = [0] * n  # L:handler
        b = sum(a)
        c = str(b)
        d = len(c)
        e = a[:2]
        f = (d, e)
        g = list(f)
        h = tuple(g)
        return h

    for _ in range(200):
        handler(10)
    footprint = _core.lib.mp_footprint(prof._c)
    codes = len(prof._names.codes)
    for _ in range(5000):
        handler(10)
    assert _core.lib.mp_footprint(prof._c) == footprint
    assert len(prof._names.codes) == codes
    assert record_at(prof.result(), line_of("L:handler")).hits == 5200


class Meeting(object):
    """Two threads meet inside the traced call: neither leaves before both are in."""

    def __init__(self):
        self.cond = threading.Condition()
        self.arrived = 0
        self.generation = 0

    def meet(self):
        with self.cond:
            generation = self.generation
            self.arrived += 1
            if self.arrived == 2:
                self.arrived = 0
                self.generation += 1
                self.cond.notify_all()
            else:
                deadline = time.time() + 10
                while self.generation == generation and time.time() < deadline:
                    self.cond.wait(1)


def test_two_threads_at_once_are_both_recorded(tracer_class):
    prof = mempulse.Profile(tracer=tracer_class)
    rounds = 50
    meeting = Meeting()

    @prof.trace
    def meet():
        meeting.meet()  # L:meet
        return bytearray(4096)  # L:after

    def worker():
        for _ in range(rounds):
            meet()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = prof.result()
    assert result.metadata["calls"] == 2 * rounds
    assert record_at(result, line_of("L:meet")).hits == 2 * rounds
    assert record_at(result, line_of("L:after")).hits == 2 * rounds


def test_reports_go_to_callback_output_path_json_or_stream(tmpdir):
    seen = []
    prof = mempulse.Profile(callback=seen.append)

    @prof.trace
    def work():
        return [0] * 10  # L:report

    work()
    prof.report()
    assert seen[0].metadata["calls"] == 1
    path = str(tmpdir.join("table.txt"))
    prof.callback, prof.output = None, path
    prof.report()
    with open(path) as f:
        text = f.read()
    assert text.startswith("mempulse: 1 call\n") and "Callsite" in text
    prof.output = str(tmpdir.join("p.json"))
    work()
    prof.report()
    with open(prof.output) as f:
        loaded = mempulse.load_json(f)
    assert record_at(loaded, line_of("L:report")).hits == 2
    stream = io.StringIO() if sys.version_info[0] > 2 else io.BytesIO()
    prof.output, prof.name = stream, "work"
    prof.report()
    assert stream.getvalue().startswith("mempulse: work: 2 calls\n")


def test_every_n_seconds_reports_from_a_thread():
    seen = []
    prof = mempulse.Profile(callback=seen.append, every=0.05)
    try:

        @prof.trace
        def work():
            return [0] * 10

        work()
        deadline = time.time() + 30
        while not seen and time.time() < deadline:
            time.sleep(0.01)
        assert seen and seen[0].metadata["calls"] == 1
        # No call since: no new report.
        count = len(seen)
        time.sleep(0.2)
        assert len(seen) == count
    finally:
        prof.close()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"every": 0}, ValueError),
        ({"every": "5"}, ValueError),
        ({"output": 3}, TypeError),
        ({"depth": -1}, ValueError),
        ({"callback": 5}, TypeError),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, error):
    with pytest.raises(error):
        mempulse.Profile(**kwargs)


def test_generators_are_refused():
    def numbers():
        yield 1

    with pytest.raises(TypeError):
        mempulse.Profile().trace(numbers)
    with pytest.raises(TypeError):
        mempulse.profile(aggregate=True)(numbers)


def test_a_call_inside_another_trace_just_runs():
    prof = mempulse.Profile()

    @prof.trace
    def work():
        return 1  # L:inner

    outer = []
    with mempulse.cMemoryUsageTracer(outer.append, 2):
        work()
    assert prof.result().metadata["calls"] == 0
    assert record_at(outer[0], line_of("L:inner")).hits == 1


SCRIPT = """
import mmap
import mempulse

KEEP = []

@mempulse.profile(aggregate=True)
def handle(i):
    m = mmap.mmap(-1, 1 << 20)
    m.write(b"h" * (1 << 20))  # L:handle
    KEEP.append(m)

for i in range(100):
    handle(i)
print("done")
"""


def test_aggregate_decorator_prints_one_table_at_exit(tmpdir):
    script = tmpdir.join("service.py")
    script.write(textwrap.dedent(SCRIPT))
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=str(tmpdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate()
    err = err.decode("utf-8", "replace")
    assert proc.returncode == 0, err
    assert out.decode().strip() == "done"
    assert err.count("Callsite") == 1, err
    assert "mempulse: handle: 100 calls" in err
    row = [line for line in err.splitlines() if ":%d " % line_of("L:handle", str(script)) in line]
    assert row and " 100 " in row[0], err
    increment = int(row[0].split()[-1].replace(",", "").replace("+", ""))
    assert increment >= 90 * MiB
