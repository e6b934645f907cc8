"""Both ways into the C core work: API mode (CPython 3 with the GIL) and ABI mode."""
import os
import platform
import subprocess
import sys
import tempfile

from mempulse import _core

CPYTHON3 = platform.python_implementation() == "CPython" and sys.version_info[0] == 3


def test_the_fast_binding_is_used_where_it_can_be():
    mode = _core.load().mode
    if os.environ.get("MEMPULSE_CFFI") == "abi" or not CPYTHON3 or _core.free_threaded():
        assert mode == "abi"
    else:
        # pip gives CPython 3 with the GIL the wheel with _api.abi3.so, and
        # every such CPython 3 must load it.
        assert mode == "api"


TRACE = """
import gc, mempulse, mempulse._core as core
results = []
mode = core.load().mode
with mempulse.cMemoryUsageTracer(results.append, 1):
    blob = b"\\x01" * (64 << 20)
    blob = None; gc.collect()
inc = [r.increment for r in results[0]]
print("%s %d %d" % (mode, max(inc) >> 20, min(inc) >> 20))
"""


def test_abi_mode_traces_the_same():
    env = dict(os.environ, MEMPULSE_CFFI="abi")
    cwd = tempfile.mkdtemp()  # import the installed package, not a source tree
    try:
        out = subprocess.Popen(
            [sys.executable, "-c", TRACE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, cwd=cwd,
        ).communicate()[0].decode("utf-8", "replace")
    finally:
        os.rmdir(cwd)
    mode, most, least = out.split()
    assert mode == "abi"
    assert 62 <= int(most) <= 68 and -68 <= int(least) <= -62, out
