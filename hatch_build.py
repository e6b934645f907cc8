"""Hatchling build hook: compile the C core and generate the cffi module.

For the wheel target it
  * compiles every csrc/*.c (not csrc/tests/) into libmempulse.so with
    $CC (default ``cc``), warnings as errors;
  * runs build_ffi.build() to generate the pure-Python _ffi.py (cffi
    out-of-line ABI mode, see build_ffi.py);
  * adds both to the wheel as mempulse/libmempulse.so and mempulse/_ffi.py
    and tags the wheel ``py2.py3-none-<platform>``: the library has no
    Python headers in it, so one wheel serves CPython 2.7, 3.x and PyPy;
  * when built by CPython 3, also compiles the API-mode module
    mempulse/_api.abi3.so (limited API: every CPython 3 loads it), whose
    calls cost a fifth of ABI mode's; the others keep using ABI mode.

Editable installs (pip install -e .) import mempulse/ from the source tree,
so for them both files are written into mempulse/ in the tree instead (they
are git-ignored); re-run the editable install after changing csrc/.
"""
import glob
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

LIBNAME = "libmempulse.so"
APINAME = "_api.abi3.so"
# The core's own code: warnings are errors.  cffi's generated glue is not
# ours to keep warning-free, so it gets GLUE_CFLAGS.
CFLAGS = [
    "-O2", "-fPIC", "-std=c99", "-D_GNU_SOURCE", "-pthread",
    "-Wall", "-Wextra", "-Werror",
]
GLUE_CFLAGS = ["-O2", "-fPIC", "-std=c99", "-D_GNU_SOURCE"]
# A shared library links even with unresolved symbols and then fails only at
# dlopen() time; make the linker reject them at build time instead.  (Not for
# the API module: the interpreter that loads it provides Python's symbols.)
LDFLAGS = ["-Wl,--no-undefined", "-pthread", "-lm"]


def platform_tag():
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def _run(cmd, what):
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              universal_newlines=True)
    except OSError as e:
        raise RuntimeError("mempulse: cannot run %r: %s" % (cmd[0], e))
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout)
        raise RuntimeError(
            "mempulse: %s failed (exit %d)\n$ %s\n%s"
            % (what, proc.returncode, " ".join(shlex.quote(c) for c in cmd),
               proc.stdout))
    if proc.stdout.strip():
        sys.stderr.write(proc.stdout)


def _build_ffi_module(root):
    spec = importlib.util.spec_from_file_location(
        "mempulse_build_ffi", os.path.join(root, "build_ffi.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_artifacts(root, outdir):
    """Build into outdir what the package needs; return {name in mempulse/: path}.

    The core is compiled once; its objects are linked into libmempulse.so
    (ABI mode) and, when CPython builds, with cffi's glue into _api.abi3.so.
    """
    csrc = os.path.join(root, "csrc")
    sources = sorted(glob.glob(os.path.join(csrc, "*.c")))
    if not sources:
        raise RuntimeError("mempulse: no C sources found in %s" % csrc)
    cc = shlex.split(os.environ.get("CC") or "cc")

    def compile_object(source, flags, include=()):
        obj = os.path.join(outdir, os.path.basename(source) + ".o")
        cmd = cc + flags + ["-c", "-I", csrc] + [a for d in include for a in ("-I", d)]
        _run(cmd + ["-o", obj, source], "compiling %s" % os.path.basename(source))
        return obj

    objects = [compile_object(source, CFLAGS) for source in sources]
    library = os.path.join(outdir, LIBNAME)
    _run(cc + ["-shared", "-o", library] + objects + LDFLAGS, "linking " + LIBNAME)
    builder = _build_ffi_module(root)
    built = {LIBNAME: library, "_ffi.py": builder.build(outdir)}
    if sys.implementation.name == "cpython":
        glue = builder.emit_api_source(os.path.join(outdir, "_api.c"))
        glue_object = compile_object(glue, GLUE_CFLAGS, [sysconfig.get_paths()["include"]])
        api = os.path.join(outdir, APINAME)
        _run(cc + ["-shared", "-o", api] + objects + [glue_object, "-pthread", "-lm"], "linking " + APINAME)
        built[APINAME] = api
    return built


class CustomBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        if self.target_name != "wheel":
            return
        build_data["pure_python"] = False
        self._tmpdir = tempfile.mkdtemp(prefix="mempulse-build-")
        built = build_artifacts(self.root, self._tmpdir)
        if version == "editable":
            # The source tree's mempulse/ is what gets imported.
            for path in built.values():
                shutil.copy(path, os.path.join(self.root, "mempulse"))
            return
        for name, path in built.items():
            build_data["force_include"][path] = "mempulse/" + name
        build_data["tag"] = "py2.py3-none-" + platform_tag()

    def finalize(self, version, build_data, artifact_path):
        tmpdir = getattr(self, "_tmpdir", None)
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
            self._tmpdir = None
