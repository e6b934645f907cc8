"""The installed package: its version and metadata, its wheel's tag, how it
loads the core, and what a source checkout without a compiled core says."""
import glob
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

import mempulse
from mempulse import _core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.dirname(os.path.abspath(mempulse.__file__))


def run(code, cwd=None, env=None, args=()):
    proc = subprocess.Popen(
        [sys.executable] + list(args) + (["-c", code] if code is not None else []),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
        env=dict(os.environ, **(env or {})),
    )
    out, err = proc.communicate()
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def dist_info():
    found = glob.glob(os.path.join(os.path.dirname(PACKAGE_DIR), "mempulse-*.dist-info"))
    if not found:
        pytest.skip("mempulse is not installed from a wheel here (no dist-info beside it)")
    assert len(found) == 1, found
    return found[0]


def read(path):
    with io.open(path, encoding="utf-8") as f:
        return f.read()


def test_version_is_the_installed_distributions():
    info = dist_info()
    assert os.path.basename(info) == "mempulse-%s.dist-info" % mempulse.__version__
    assert mempulse.version == mempulse.__version__
    assert re.search(r"^Version: %s$" % re.escape(mempulse.version),
                     read(os.path.join(info, "METADATA")), re.M)
    # It supersedes the original design's last release on PyPI.
    assert tuple(int(p) for p in mempulse.version.split(".")[:3]) > (0, 6, 4)


def test_wheel_tag_matches_what_it_carries():
    tags = re.findall(r"^Tag: (\S+)$", read(os.path.join(dist_info(), "WHEEL")), re.M)
    assert tags
    carries_api = os.path.exists(os.path.join(PACKAGE_DIR, _core.api_module_name()))
    assert os.path.exists(_core.LIBRARY)
    for tag in tags:
        python, abi, platform = tag.split("-")
        if carries_api:
            # Only CPython 3 with the GIL may pick a wheel with the abi3 module.
            assert (python, abi) == ("cp36", "abi3"), tag
        else:
            assert (python, abi) in (("py2", "none"), ("py3", "none")), tag
        assert platform != "any", tag


def test_long_description_links_are_absolute():
    metadata = read(os.path.join(dist_info(), "METADATA"))
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", metadata)
    assert images, "the README has pictures"
    for target in images + re.findall(r"[^!]\[[^\]]*\]\(([^)#]+)\)", metadata):
        assert target.startswith(("https://", "mailto:")), target


def test_load_gives_one_cached_core_and_the_old_names():
    core = _core.load()
    assert core is _core.load()
    assert core.mode in ("api", "abi")
    from mempulse._core import MODE, ffi, lib

    assert (ffi, lib, MODE) == tuple(core)
    assert _core.strerror(0)
    if _core.free_threaded() or os.environ.get("MEMPULSE_CFFI") == "abi":
        assert core.mode == "abi"


THREADS_LOAD = """
import threading
import mempulse._core as core
results, barrier = [], threading.Barrier(8)
def worker():
    barrier.wait()
    results.append(core.load())
threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
assert len(results) == 8 and all(r is results[0] for r in results), results
print(results[0].mode)
"""


@pytest.mark.skipif(sys.version_info < (3, 2), reason="threading.Barrier is Python 3.2+")
def test_first_load_from_many_threads_at_once_loads_once():
    cwd = tempfile.mkdtemp()
    try:
        for _ in range(25):
            rc, out, err = run(THREADS_LOAD, cwd=cwd)
            assert rc == 0 and out.strip() in ("api", "abi"), (out, err)
    finally:
        os.rmdir(cwd)


@pytest.fixture
def uncompiled_checkout():
    """A copy of the checkout's mempulse/ sources, with no compiled core."""
    source = os.path.join(ROOT, "mempulse")
    if not os.path.exists(os.path.join(source, "__init__.py")):
        pytest.skip("no mempulse/ sources beside tests/")
    top = tempfile.mkdtemp()
    os.mkdir(os.path.join(top, "mempulse"))
    os.mkdir(os.path.join(top, "csrc"))
    for name in os.listdir(source):
        if name.endswith(".py") and name != "_ffi.py":
            shutil.copy(os.path.join(source, name), os.path.join(top, "mempulse"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), top)
    yield top
    shutil.rmtree(top)


def test_checkout_without_core_says_what_to_do(uncompiled_checkout):
    rc, out, err = run("import mempulse._core as c; c.load()", cwd=uncompiled_checkout)
    assert rc == 1
    last = err.strip().splitlines()[-1]
    assert "CoreMissing: mempulse: %s is a source checkout" % uncompiled_checkout in last, err
    assert "pip install -e ." in last and "pip install ." in last, err
    # One error, not a chain ending in "No module named 'mempulse._ffi'".
    assert "During handling" not in err and "_ffi'" not in err, err


def test_checkout_without_core_fails_at_import_or_first_trace_with_the_hint(uncompiled_checkout):
    code = ("import mempulse\n"
            "with mempulse.cMemoryUsageTracer(lambda result: None, 1):\n"
            "    pass\n")
    rc, out, err = run(code, cwd=uncompiled_checkout)
    assert rc == 1 and "pip install -e ." in err.strip().splitlines()[-1], err


@pytest.mark.skipif(sys.version_info < (3, 7), reason="before 3.7 mempulse._core loads the core "
                    "when imported (no module __getattr__ for the old names)")
def test_import_mempulse_loads_no_compiled_code():
    rc, out, err = run("import sys, mempulse\n"
                       "print(sorted(m for m in sys.modules if m in ('mempulse._ffi', 'mempulse._api', '_cffi_backend')))",
                       cwd=tempfile.gettempdir())
    assert rc == 0 and out.strip() == "[]", (out, err)


# Broken packages, made for real: what import_optional shows for each.
BROKEN = {
    # PyPy with psutil >= 7.1: the compiled module fails to load.
    "mp_broken_symbol": "raise ImportError('/x/_psutil_linux.so: undefined symbol: PyErr_FormatV')\n",
    # A package whose own compiled submodule is missing.
    "mp_broken_submodule": "from mp_broken_submodule import _ext\n",
}

OPTIONAL = """
import sys
from mempulse._optional import import_optional
try:
    import_optional(sys.argv[1], "needs it: pip install it")
except ImportError as e:
    print("%s|%s|%s" % (type(e).__name__, e, getattr(e, "__context__", None) is not None))
"""


@pytest.mark.parametrize("name, shown", [
    ("mp_not_installed_anywhere", "needs it: pip install it"),
    ("mp_broken_symbol", "undefined symbol: PyErr_FormatV"),
    ("mp_broken_submodule", "_ext"),
])
def test_import_optional_hints_only_when_not_installed(tmpdir, name, shown):
    for package, body in BROKEN.items():
        tmpdir.mkdir(package).join("__init__.py").write(body)
    script = tmpdir.join("opt.py")
    script.write(OPTIONAL)
    proc = subprocess.Popen([sys.executable, str(script), name], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=str(tmpdir))
    out = proc.communicate()[0].decode("utf-8", "replace").strip()
    kind, message, chained = out.split("|")
    assert kind in ("ImportError", "ModuleNotFoundError") and shown in message, out
    if name == "mp_not_installed_anywhere":
        assert message == "needs it: pip install it"
        assert chained == "False", "the hint is shown alone, without the import chain"
    else:
        assert "pip install" not in message, out
