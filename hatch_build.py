"""Hatchling hooks: compile the C core into the wheel; PyPI-ready metadata.

Wheel build hook (``CustomBuildHook``):
  * compiles every csrc/*.c (not csrc/tests/) into the ABI-mode library
    (``libmempulse.so``; ``.dylib`` on macOS, ``mempulse.dll`` on Windows)
    and runs build_ffi.build() to generate the pure-Python ``_ffi.py``:
    no Python headers, so these serve CPython 2.7, 3.x, PyPy and
    free-threaded CPython alike;
  * on CPython 3 with the GIL, also builds the API-mode module
    ``_api.abi3.so`` (limited API, calls a fraction of ABI mode's cost).
    It is optional: if it cannot be built the wheel goes without it, with a
    warning.  Free-threaded CPython has no limited API, so it is skipped
    there (as argon2-cffi-bindings does on ``Py_GIL_DISABLED``);
  * tags the wheel ``cp36-abi3-<platform>`` when it carries the API module
    (every CPython 3 with the GIL; not free-threaded builds, which cannot
    load it), else ``py2.py3-none-<platform>`` (every interpreter).

Compiler and flags: ``$CC`` (split like a shell would, so
``CC="python -m ziglang cc -target x86_64-linux-gnu.2.17"`` works), else the
first of cc, gcc, clang on PATH; ``$CPPFLAGS``/``$CFLAGS`` and ``$LDFLAGS``
are appended to ours.  Warnings are errors only with ``MEMPULSE_WERROR=1``
(the project's CI and release script), never in users' builds.
``MEMPULSE_BUILD_API=0`` leaves the API module out, ``=1`` makes its failure
fatal.  ``MEMPULSE_PLATFORM_TAG`` (e.g. ``linux_aarch64``) names the target
when cross-compiling.

Editable installs (pip install -e .) import mempulse/ from the source tree,
so for them the built files are written into mempulse/ in the tree instead
(they are git-ignored); re-run the editable install after changing csrc/.

Metadata hook (``CustomMetadataHook``): the long description is README.md
with relative links made absolute (images from raw.githubusercontent.com at
the release's tag), since PyPI's page cannot resolve them.
"""
import glob
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.metadata.plugin.interface import MetadataHookInterface

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_source(name, relpath):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The loader owns the file names; the build writes what it will look for.
_core = _load_source("mempulse_core_names", os.path.join("mempulse", "_core.py"))

# cffi's generated glue is not ours to keep warning-free: no -W flags for it.
WARNINGS = ["-Wall", "-Wextra"]


def _env_flags(*names):
    return [flag for name in names for flag in shlex.split(os.environ.get(name, ""))]


def target_platform():
    """The wheel's platform tag, e.g. ``linux_x86_64`` (or $MEMPULSE_PLATFORM_TAG)."""
    tag = os.environ.get("MEMPULSE_PLATFORM_TAG")
    if tag:
        return tag
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def target_os(platform_tag):
    """``sys.platform``-style name of the system the wheel is for."""
    if platform_tag.startswith("win"):
        return "win32"
    if platform_tag.startswith("macosx"):
        return "darwin"
    if platform_tag.startswith(("linux", "manylinux", "musllinux")):
        return "linux"
    return sys.platform


def compiler():
    """The C compiler command as a list: $CC, else cc, gcc or clang from PATH."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return [name]
    raise RuntimeError(
        "mempulse: no C compiler found (looked for cc, gcc, clang on PATH); "
        "install one or name it in CC, e.g. CC=clang pip install ."
    )


def core_cflags(os_name):
    flags = ["-O2", "-std=c99", "-D_GNU_SOURCE"] + WARNINGS
    if os.environ.get("MEMPULSE_WERROR") == "1":
        flags.append("-Werror")
    if os_name != "win32":
        flags += ["-fPIC", "-pthread"]
    return flags + _env_flags("CPPFLAGS", "CFLAGS")


def glue_cflags(os_name):
    flags = ["-O2", "-std=c99", "-D_GNU_SOURCE"]
    if os_name != "win32":
        flags.append("-fPIC")
    return flags + _env_flags("CPPFLAGS", "CFLAGS")


def library_ldflags(os_name):
    flags = ["-shared"]
    if os_name == "linux":
        # A shared library links even with unresolved symbols and then fails
        # only at dlopen() time; GNU ld and lld can reject them now instead.
        flags.append("-Wl,--no-undefined")
    if os_name != "win32":
        flags += ["-pthread", "-lm"]
    return flags


def api_ldflags(os_name):
    """Link flags of the API module: Python's symbols come from the interpreter."""
    flags = ["-shared"]
    if os_name == "darwin":
        flags.append("-Wl,-undefined,dynamic_lookup")
    elif os_name == "win32":
        flags += ["-L" + os.path.join(sys.base_prefix, "libs"), "-lpython3"]
    if os_name != "win32":
        flags += ["-pthread", "-lm"]
    return flags


def _run(cmd, what):
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
    except OSError as e:
        raise RuntimeError("mempulse: cannot run %r (%s): %s" % (cmd[0], what, e))
    if proc.returncode != 0:
        raise RuntimeError(
            "mempulse: %s failed (exit %d)\n$ %s\n%s"
            % (what, proc.returncode, " ".join(shlex.quote(c) for c in cmd), proc.stdout))
    if proc.stdout.strip():
        sys.stderr.write(proc.stdout)


def api_module_reason():
    """Why the building interpreter gets no API module, or None if it can."""
    setting = os.environ.get("MEMPULSE_BUILD_API", "")
    if setting == "0":
        return "MEMPULSE_BUILD_API=0"
    if sys.implementation.name != "cpython":
        return "%s uses ABI mode" % sys.implementation.name
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "free-threaded CPython has no limited API"
    return None


def build_artifacts(root, outdir, warn=None):
    """Build into outdir what the package needs; return {name in mempulse/: path}.

    The core is compiled once; its objects are linked into the ABI-mode
    library and, where it can be built, with cffi's glue into the API module.
    """
    warn = warn or (lambda message: sys.stderr.write("WARNING: %s\n" % message))
    csrc = os.path.join(root, "csrc")
    sources = sorted(glob.glob(os.path.join(csrc, "*.c")))
    if not sources:
        raise RuntimeError("mempulse: no C sources found in %s" % csrc)
    os_name = target_os(target_platform())
    cc = compiler()

    def compile_object(source, flags, include=()):
        obj = os.path.join(outdir, os.path.basename(source) + ".o")
        cmd = cc + flags + ["-I", csrc] + [a for d in include for a in ("-I", d)]
        _run(cmd + ["-c", "-o", obj, source], "compiling %s" % os.path.basename(source))
        return obj

    objects = [compile_object(source, core_cflags(os_name)) for source in sources]
    libname = _core.library_name(os_name)
    library = os.path.join(outdir, libname)
    ldflags = _env_flags("LDFLAGS")
    _run(cc + ["-o", library] + objects + library_ldflags(os_name) + ldflags, "linking " + libname)
    builder = _load_source("mempulse_build_ffi", "build_ffi.py")
    built = {libname: library, "_ffi.py": builder.build(outdir)}

    reason = api_module_reason()
    if reason:
        sys.stderr.write("mempulse: ABI mode only (%s)\n" % reason)
        return built
    apiname = _core.api_module_name(os_name)
    try:
        glue = builder.emit_api_source(os.path.join(outdir, "_api.c"))
        glue_object = compile_object(glue, glue_cflags(os_name), [sysconfig.get_paths()["include"]])
        api = os.path.join(outdir, apiname)
        _run(cc + ["-o", api] + objects + [glue_object] + api_ldflags(os_name) + ldflags,
             "linking " + apiname)
    except RuntimeError as e:
        if os.environ.get("MEMPULSE_BUILD_API") == "1":
            raise
        warn("mempulse: the optional API-mode module was not built, the package "
             "uses ABI mode (slower calls, same results):\n%s" % e)
        return built
    built[apiname] = api
    return built


def wheel_tag(built, platform_tag):
    if any(name.startswith("_api.") for name in built):
        # The limited API of 3.2 (cffi's level): every CPython >= 3.6 with
        # the GIL loads it; the ABI-mode library in the same wheel serves
        # nothing else there, so the tag need not cover other interpreters.
        return "cp36-abi3-" + platform_tag
    return "py2.py3-none-" + platform_tag


class CustomBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        if self.target_name != "wheel":
            return
        build_data["pure_python"] = False
        self._tmpdir = tempfile.mkdtemp(prefix="mempulse-build-")
        built = build_artifacts(self.root, self._tmpdir, self.app.display_warning)
        if version == "editable":
            # The source tree's mempulse/ is what gets imported; no stale
            # API module from an earlier build may shadow the new library.
            package = os.path.join(self.root, "mempulse")
            for name in (_core.api_module_name(), "_api.abi3.so", "_api.pyd"):
                if name not in built and os.path.exists(os.path.join(package, name)):
                    os.remove(os.path.join(package, name))
            for path in built.values():
                shutil.copy(path, package)
            return
        for name, path in built.items():
            build_data["force_include"][path] = "mempulse/" + name
        build_data["tag"] = wheel_tag(built, target_platform())

    def finalize(self, version, build_data, artifact_path):
        tmpdir = getattr(self, "_tmpdir", None)
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
            self._tmpdir = None


# Markdown links and images whose target is a path in the repository.
RELATIVE_LINK = re.compile(r"(!?)\[([^\]]*)\]\((?!https?:|mailto:|#)([^)\s]+)\)")


def absolute_links(text, repository, ref):
    """README text with repository-relative links made absolute at ``ref``."""
    base = repository.rstrip("/")
    raw = base.replace("https://github.com/", "https://raw.githubusercontent.com/")

    def fix(match):
        bang, label, target = match.groups()
        if bang:
            return "![%s](%s/%s/%s)" % (label, raw, ref, target)
        return "[%s](%s/blob/%s/%s)" % (label, base, ref, target)

    return RELATIVE_LINK.sub(fix, text)


class CustomMetadataHook(MetadataHookInterface):
    PLUGIN_NAME = "custom"

    def update(self, metadata):
        with open(os.path.join(self.root, "README.md"), encoding="utf-8") as f:
            text = f.read()
        version = metadata.get("version") or _version(self.root)
        metadata["readme"] = {
            "content-type": "text/markdown",
            "text": absolute_links(text, metadata["urls"]["Source"], "v" + version),
        }


def _version(root):
    with open(os.path.join(root, "mempulse", "__init__.py"), encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)
