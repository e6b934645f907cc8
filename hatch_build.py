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
CFLAGS = [
    "-O2", "-fPIC", "-shared", "-std=c99", "-D_GNU_SOURCE",
    "-Wall", "-Wextra", "-Werror",
]
# A shared library links even with unresolved symbols and then fails only at
# dlopen() time; make the linker reject them at build time instead.
LDFLAGS = ["-Wl,--no-undefined", "-lm"]


def platform_tag():
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def compile_library(root, outdir):
    """Compile csrc/*.c into outdir/libmempulse.so; return its path."""
    csrc = os.path.join(root, "csrc")
    sources = sorted(glob.glob(os.path.join(csrc, "*.c")))
    if not sources:
        raise RuntimeError("mempulse: no C sources found in %s" % csrc)
    cc = shlex.split(os.environ.get("CC") or "cc")
    target = os.path.join(outdir, LIBNAME)
    cmd = cc + CFLAGS + ["-I", csrc, "-o", target] + sources + LDFLAGS
    _run(cmd, "compiling the C core")
    return target


def _build_ffi_module(root):
    spec = importlib.util.spec_from_file_location(
        "mempulse_build_ffi", os.path.join(root, "build_ffi.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate_ffi(root, outdir):
    """Run build_ffi.build(outdir); return the path of _ffi.py."""
    return _build_ffi_module(root).build(outdir)


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


def compile_api_module(root, outdir):
    """Compile the API-mode module _api.abi3.so (CPython 3 only); return its path.

    The core's own sources get the strict flags; cffi's generated glue gets
    plain -O2, since its code is not ours to keep warning-free.
    """
    csrc = os.path.join(root, "csrc")
    cc = shlex.split(os.environ.get("CC") or "cc")
    glue = _build_ffi_module(root).emit_api_source(os.path.join(outdir, "_api.c"))
    include = sysconfig.get_paths()["include"]
    objects = []
    for source in sorted(glob.glob(os.path.join(csrc, "*.c"))) + [glue]:
        obj = os.path.join(outdir, os.path.basename(source) + ".o")
        flags = CFLAGS if source != glue else ["-O2", "-fPIC", "-std=c99", "-D_GNU_SOURCE"]
        flags = [f for f in flags if f != "-shared"]
        _run(cc + flags + ["-c", "-I", csrc, "-I", include, "-o", obj, source],
             "compiling %s" % os.path.basename(source))
        objects.append(obj)
    # Python's symbols are resolved by the interpreter that loads the module,
    # so no --no-undefined here.
    target = os.path.join(outdir, "_api.abi3.so")
    _run(cc + ["-shared", "-o", target] + objects + ["-lm"], "linking _api.abi3.so")
    return target


class CustomBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        if self.target_name != "wheel":
            return
        build_data["pure_python"] = False
        if version == "editable":
            outdir = os.path.join(self.root, "mempulse")
            compile_library(self.root, outdir)
            generate_ffi(self.root, outdir)
            if sys.implementation.name == "cpython":
                scratch = tempfile.mkdtemp(prefix="mempulse-build-")
                try:
                    shutil.copy(compile_api_module(self.root, scratch), outdir)
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
            return
        self._tmpdir = tempfile.mkdtemp(prefix="mempulse-build-")
        lib = compile_library(self.root, self._tmpdir)
        ffi = generate_ffi(self.root, self._tmpdir)
        build_data["force_include"][lib] = "mempulse/" + LIBNAME
        build_data["force_include"][ffi] = "mempulse/_ffi.py"
        if sys.implementation.name == "cpython":
            api = compile_api_module(self.root, self._tmpdir)
            build_data["force_include"][api] = "mempulse/_api.abi3.so"
        build_data["tag"] = "py2.py3-none-" + platform_tag()

    def finalize(self, version, build_data, artifact_path):
        tmpdir = getattr(self, "_tmpdir", None)
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
            self._tmpdir = None
