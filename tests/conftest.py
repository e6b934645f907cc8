import gc
import os

import pytest

import mempulse

MiB = 1 << 20

try:
    import psutil  # noqa: F401

    HAVE_PSUTIL = True
except ImportError:
    HAVE_PSUTIL = False

TRACERS = [
    mempulse.cMemoryUsageTracer,
    pytest.param(
        mempulse.MemoryUsageTracer,
        marks=pytest.mark.skipif(not HAVE_PSUTIL, reason="psutil is not installed"),
    ),
]


@pytest.fixture(params=TRACERS, ids=["c", "psutil"])
def tracer_class(request):
    return request.param


_PATTERN = b"\x5a" * MiB


def touched(n):
    """n bytes of fresh anonymous memory, every page written.

    An mmap, not a bytes object: malloc may hand back heap pages that are
    already resident (freed earlier in the process), which would not change
    USS at all; a fresh mapping always does, and closing it gives it back.
    """
    import mmap

    assert n % MiB == 0
    m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE)
    for _ in range(n // MiB):
        m.write(_PATTERN)
    return m


def line_of(marker, path=None):
    """Line number of the line ending with the comment ``# <marker>``."""
    import inspect

    if path is None:
        path = inspect.stack()[1][1]
    with open(path) as f:
        for number, text in enumerate(f, 1):
            if text.rstrip().endswith("# " + marker):
                return number
    raise LookupError("no line marked %r in %s" % (marker, path))


def record_at(result, lineno, path=None):
    """The record of line ``lineno`` (of ``path``, default the caller's file)."""
    import inspect

    if path is None:
        path = inspect.stack()[1][1]
    path = os.path.normcase(os.path.abspath(path)).replace(".pyc", ".py")
    found = [
        r
        for r in result
        if r.lineno == lineno and os.path.normcase(os.path.abspath(r.filename)) == path
    ]
    assert len(found) == 1, "line %d: %r" % (lineno, found)
    return found[0]


# The process-wide meter keeps these open for the process's life (csrc/meter.c).
_METER_FILES = ("statm", "smaps_rollup", "status", "clear_refs")


def open_fds():
    """This process's open fds, less the meter's kept-open /proc files."""
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:  # the directory's own fd, closed by now
            continue
        if target in ["/proc/%d/%s" % (os.getpid(), name) for name in _METER_FILES]:
            continue
        fds.append(fd)
    return sorted(fds)


@pytest.fixture(autouse=True)
def clean_state():
    """Every test starts and must end with no tracer and no leaked fds."""
    import sys

    gc.collect()
    if hasattr(gc, "freeze"):  # 3.7+
        # What survives is the session's (pytest's, the modules', earlier
        # tests' results): kept out of later collections, which then walk
        # only what this test makes instead of the whole heap each time (a
        # full collection, twice per test, was a third of the suite's time).
        gc.freeze()
    trace_before = sys.gettrace()
    fds_before = open_fds()
    yield
    gc.collect()
    assert sys.gettrace() is trace_before
    assert mempulse._tracer.current_tracer() is None
    assert open_fds() == fds_before


# Every tracer test that asks for ``driver`` runs under each driver this
# interpreter has: sys.settrace everywhere, sys.monitoring on 3.12+.
DRIVERS = ["settrace"] + (["sysmon"] if hasattr(__import__("sys"), "monitoring") else [])


def use_driver(monkeypatch, name):
    """Trace under ``name`` ("settrace" or "sysmon") until the test ends."""
    if name == "settrace":
        monkeypatch.setenv("MEMPULSE_DRIVER", "settrace")
    else:
        monkeypatch.delenv("MEMPULSE_DRIVER", raising=False)
    # MEMPULSE_DRIVER is read when a process's first trace starts: read it again.
    monkeypatch.setattr(mempulse._tracer, "_driver_setting", [])


@pytest.fixture(params=DRIVERS)
def driver(request, monkeypatch):
    use_driver(monkeypatch, request.param)
    return request.param


def run_python(code, timeout=120, env=None):
    """Run ``code`` in a fresh interpreter (this one); (status, stdout, stderr).

    For scenarios that could hang or kill the process: a timeout fails the
    test instead of hanging the suite.
    """
    import subprocess
    import sys
    import textwrap
    import threading

    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        out, err = proc.communicate()
    finally:
        timer.cancel()
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
