"""How a run under the CLI ends: os._exit, forks, Ctrl-C, reports that cannot be written.

Each case runs the same program under plain python and under mempulse, in
real processes, and compares what a caller sees: exit status (or the
signal), output, and the children's exit statuses.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import HAVE_PSUTIL
from test_cli import CONSOLE, run, write

MiB = 1 << 20

SAMPLERS = [
    "c",
    pytest.param("psutil", marks=pytest.mark.skipif(not HAVE_PSUTIL, reason="psutil is not installed")),
]

# Runs a command as a child subreaper (Linux prctl): orphaned grandchildren
# are reparented to it, so it can wait for every process the command forked
# and report their exit statuses, even of those outliving their parent.
REAPER = r"""
import ctypes, json, os, subprocess, sys
if ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl failed")
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
out, err = proc.communicate()  # the pipes close when every process using them ended
statuses = []
while True:
    try:
        pid, status = os.wait()
    except OSError:  # ECHILD: nobody left
        break
    statuses.append(os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status))
sys.stdout.write(json.dumps({"status": proc.returncode, "children": sorted(statuses),
                             "out": out.decode("utf-8", "replace"), "err": err.decode("utf-8", "replace")}))
"""


def reaped(cwd, command):
    """{status, children (their exit statuses), out, err} of ``command``."""
    proc = subprocess.Popen([sys.executable, "-c", REAPER] + command, cwd=str(cwd), stdout=subprocess.PIPE)
    out, _ = proc.communicate()
    assert proc.returncode == 0, out
    return json.loads(out.decode("utf-8"))


def python_and_mempulse(tmpdir, script, args=()):
    """What plain python and mempulse each make of ``script``."""
    expected = reaped(tmpdir, [sys.executable, script] + list(args))
    got = reaped(tmpdir, [CONSOLE] + list(args) + [script])
    return expected, got


def tables(err):
    return err.count("Callsite ")


# ---- os._exit ------------------------------------------------------------------


def test_os_exit_writes_the_report_first(tmpdir):
    write(
        tmpdir,
        "quit.py",
        """
        import os, sys
        blob = b"x" * int("25165824")  # 24 MiB, made at run time (PyPy folds constants)
        sys.stdout.write("before\\n")
        sys.stdout.flush()
        os._exit(3)
        """,
    )
    expected, got = python_and_mempulse(tmpdir, "quit.py", ["--json", "quit.json"])
    assert expected["status"] == got["status"] == 3
    assert got["out"] == expected["out"] == "before\n"
    assert tables(got["err"]) == 1 and "Traceback" not in got["err"]
    with open(str(tmpdir.join("quit.json"))) as f:
        records = json.load(f)["records"]
    assert [r["increment"] for r in records if r["lineno"] == 2][0] >= 20 * MiB, [(r["lineno"], r["increment"], r["peak_rss"]) for r in records]
    assert max(r["lineno"] for r in records) == 5  # the os._exit line itself


def test_os_exit_in_another_thread_says_there_is_no_report(tmpdir):
    write(
        tmpdir,
        "quit_thread.py",
        """
        import os, threading, time
        threading.Thread(target=os._exit, args=(4,)).start()
        time.sleep(60)
        """,
    )
    status, out, err = run(tmpdir, ["quit_thread.py"])
    assert status == 4
    assert err.splitlines() == ["mempulse: os._exit() outside the program's main thread: no report"]


# ---- forks -----------------------------------------------------------------------

FORK_WAITED = """
import os, sys
blob = b"p" * (8 << 20)
pid = os.fork()
if pid == 0:
    child = b"c" * (32 << 20)
    sys.stdout.write("child ran\\n")
    sys.stdout.flush()
    sys.exit(5)
_, status = os.waitpid(pid, 0)
print("child status %d" % os.WEXITSTATUS(status))
"""

# The parent does not wait: the child goes on after the parent (and its
# mempulse) has ended, allocates, and ends as the script's last line.
FORK_ORPHAN = """
import os, sys, time
parent = os.getpid()
pid = os.fork()
if pid == 0:
    while os.getppid() == parent:
        time.sleep(0.01)
    data = [b"o" * 4096 for _ in range(5000)]
    sys.stdout.write("orphan ran %d\\n" % len(data))
    sys.stdout.flush()
    {ending}
"""


def test_forked_child_that_the_parent_waits_for(tmpdir):
    write(tmpdir, "fork.py", FORK_WAITED)
    for _ in range(5):
        expected, got = python_and_mempulse(tmpdir, "fork.py")
        assert expected["status"] == got["status"] == 0
        assert expected["children"] == got["children"] == []  # the parent reaped it
        assert sorted(got["out"].splitlines()) == sorted(expected["out"].splitlines())
        assert "child status 5" in got["out"]  # what the parent saw
        # Only the process that started the run reports.
        assert tables(got["err"]) == 1 and "Traceback" not in got["err"], got["err"]


@pytest.mark.parametrize("ending, child_status", [("pass", 0), ("sys.exit(6)", 6), ("os._exit(7)", 7)])
def test_forked_child_outliving_the_parent(tmpdir, ending, child_status):
    write(tmpdir, "orphan.py", FORK_ORPHAN.format(ending=ending))
    for _ in range(5):
        expected, got = python_and_mempulse(tmpdir, "orphan.py")
        assert expected["status"] == got["status"] == 0
        assert expected["children"] == got["children"] == [child_status]
        assert got["out"] == expected["out"] == "orphan ran 5000\n"
        assert tables(got["err"]) == 1 and "Traceback" not in got["err"], got["err"]
        assert "mempulse" not in got["err"]


MULTIPROCESSING = """
import multiprocessing, sys

def work(n):
    data = b"w" * (n << 20)
    return len(data) >> 20

if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork") if hasattr(multiprocessing, "get_context") else multiprocessing
    p = ctx.Process(target=work, args=(16,))
    p.start()
    p.join()
    print("exitcode %d" % p.exitcode)
    pool = ctx.Pool(2)
    print(sorted(pool.map(work, [1, 2, 3, 4])))
    pool.close()
    pool.join()
"""


def test_multiprocessing_with_the_fork_start_method(tmpdir):
    write(tmpdir, "mp.py", MULTIPROCESSING)
    for _ in range(3):
        expected, got = python_and_mempulse(tmpdir, "mp.py", ["--depth", "2"])
        assert expected["status"] == got["status"] == 0
        assert got["out"] == expected["out"] == "exitcode 0\n[1, 2, 3, 4]\n"
        assert tables(got["err"]) == 1 and "Traceback" not in got["err"], got["err"]


# ---- Ctrl-C ------------------------------------------------------------------------

LOOP = """
def work():
    return [0] * 1000

open("ready", "w").close()
while True:
    data = work()  # L:loop
"""


def interrupted(tmpdir, command):
    """(status, stderr, seconds from SIGINT to exit) of ``command`` interrupted once running."""
    ready = tmpdir.join("ready")
    if ready.check():
        ready.remove()
    # A default SIGINT disposition, whatever the test runner inherited
    # (a background job starts with SIGINT ignored).
    proc = subprocess.Popen(
        command,
        cwd=str(tmpdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 60
    while not ready.check() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.2)  # well inside the loop
    proc.send_signal(signal.SIGINT)
    sent = time.time()
    while proc.poll() is None and time.time() - sent < 10:
        time.sleep(0.02)
    elapsed = time.time() - sent
    if proc.poll() is None:
        proc.kill()
    _, err = proc.communicate()
    return proc.returncode, err.decode("utf-8", "replace"), elapsed


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("depth", ["1", "2"])
def test_ctrl_c_ends_the_run_as_it_ends_python(tmpdir, sampler, depth):
    script = write(tmpdir, "loop.py", LOOP)
    expected_status, expected_err, _ = interrupted(tmpdir, [sys.executable, script])
    assert "KeyboardInterrupt" in expected_err
    for _ in range(3):
        status, err, elapsed = interrupted(tmpdir, [CONSOLE, "--sampler", sampler, "--depth", depth, script])
        if sampler == "psutil" and elapsed >= 10:
            # An interrupt raised inside the psutil sampler's cffi callback
            # would be lost, so mempulse._interrupts defers it to the
            # program's own code, which barely runs between slow readings.
            pytest.xfail("Ctrl-C waited >10 s for the program's code between psutil readings "
                         "(needs the sampler/engine to re-raise an interrupt at the next line)")
        assert elapsed < 10, err
        # Killed by SIGINT on CPython 3.8+, status 1 before: as python.
        assert status == expected_status, err
        lines = err.splitlines()
        assert lines[0] == "Traceback (most recent call last):", err
        # The traceback is the program's, as python shows it; the table follows.
        end = lines.index("KeyboardInterrupt")
        assert "mempulse" not in "\n".join(lines[:end]), err
        assert "loop.py" in lines[1]
        assert lines[end + 1].startswith("Callsite"), err
        assert "loop.py:%d " % (LOOP.strip().split("\n").index("    data = work()  # L:loop") + 1) in err


def test_ctrl_c_under_python_dash_m_mempulse(tmpdir):
    # The interrupt goes through runpy, not the console script, here.
    script = write(tmpdir, "loop.py", LOOP)
    expected_status, _, _ = interrupted(tmpdir, [sys.executable, script])
    for _ in range(3):
        status, err, elapsed = interrupted(tmpdir, [sys.executable, "-m", "mempulse", script])
        assert elapsed < 10 and status == expected_status, err
        assert err.count("Traceback") == 1 and "Callsite" in err, err


def test_a_programs_own_sigint_handler_is_left_alone(tmpdir):
    script = write(
        tmpdir,
        "handled.py",
        """
        import signal, sys
        stop = []
        signal.signal(signal.SIGINT, lambda signum, frame: stop.append(signum))
        open("ready", "w").close()
        while not stop:
            data = [0] * 1000
        print("stopped cleanly")
        """,
    )
    status, err, elapsed = interrupted(tmpdir, [CONSOLE, script])
    assert status == 0 and elapsed < 10 and "Traceback" not in err
    assert err.startswith("Callsite")


# ---- reports that cannot be written --------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("option", ["-o", "--json", "--csv"])
@pytest.mark.parametrize("program_status", [0, 3])
def test_a_report_that_cannot_be_written_is_one_line_and_keeps_the_status(tmpdir, option, program_status):
    write(tmpdir, "ok.py", "import sys\nprint('done')\nsys.exit(%d)\n" % program_status)
    status, out, err = run(tmpdir, [option, "/dev/full", "ok.py"])
    assert status == program_status
    assert out == "done\n"
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == ["python -m mempulse: error: cannot write '/dev/full': [Errno 28] No space left on device"], err
    assert "Traceback" not in err
