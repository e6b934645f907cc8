"""cffi builder for mempulse's C core (out-of-line ABI mode).

Reads the declarations between the ``/* cffi:begin */`` and ``/* cffi:end */``
markers of csrc/mempulse.h and emits ``mempulse/_ffi.py``, a pure-Python
module that describes the C interface; at run time the Python layer opens
the separately compiled shared library with ``ffi.dlopen()``.

Why ABI mode: nothing here is compiled against Python headers, so ONE
compiled artifact (libmempulse.so) and one generated _ffi.py serve CPython
2.7, every CPython 3 (free-threaded builds included) and PyPy alike.

Where the building interpreter is CPython 3 with the GIL, the build also
compiles an API-mode module, ``mempulse/_api.abi3.so`` (see
emit_api_source), which mempulse prefers there for its cheaper calls; ABI
mode stays the fallback that works everywhere (hatch_build.py tags the
wheels accordingly).

Usage: python build_ffi.py OUTDIR   (writes OUTDIR/_ffi.py)
"""
from __future__ import print_function

import io
import os
import sys

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "csrc", "mempulse.h")
BEGIN = "/* cffi:begin */"
END = "/* cffi:end */"


def cdef_text(header=HEADER):
    """Return the text between the cffi markers of the header."""
    with io.open(header, encoding="utf-8") as f:
        text = f.read()
    start = text.find(BEGIN)
    stop = text.find(END)
    if start < 0 or stop < 0 or stop < start:
        raise RuntimeError("%s: missing or misordered %r / %r markers"
                           % (header, BEGIN, END))
    return text[start + len(BEGIN):stop]


def make_builder(header=HEADER, module="mempulse._ffi", source=None):
    ffibuilder = cffi.FFI()
    ffibuilder.cdef(cdef_text(header))
    ffibuilder.set_source(module, source)
    return ffibuilder


def build(outdir):
    """Write _ffi.py into outdir (created if needed); return its path."""
    if not os.path.isdir(outdir):
        os.makedirs(outdir)
    target = os.path.join(outdir, "_ffi.py")
    make_builder().emit_python_code(target)
    return target


# cffi wraps every call in Py_BEGIN/END_ALLOW_THREADS.  Releasing and
# retaking the GIL costs more than the core's event functions themselves
# (~20 ns), and the tracer makes one call per line, so the API-mode module
# keeps the GIL instead.  Only the start and finish readings take long
# (smaps_rollup: ~4 ms per resident GiB), and other threads wait no longer
# than they would for any Python code.  cffi also saves and restores errno
# around every call (for ffi.errno: two calls into its backend, each a
# thread-local lookup); the core returns the errno its callers need
# (mp_proc_open's err, mp_error_errno), so the API-mode module skips that.
API_PREAMBLE = """\
#include "mempulse.h"
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#define Py_END_ALLOW_THREADS }
#undef _cffi_restore_errno
#undef _cffi_save_errno
#define _cffi_restore_errno() ((void)0)
#define _cffi_save_errno() ((void)0)
"""


def emit_api_source(path):
    """Write the C source of the API-mode module ``mempulse._api``.

    ABI mode pays libffi's generic call path on every call (~300 ns here);
    an API-mode module calls the core directly (~115-150 ns), which matters with
    one call per traced line.  cffi compiles it against the limited API, so
    one ``_api.abi3.so`` serves every CPython 3; CPython 2.7 and PyPy use
    ABI mode (on PyPy its calls are cheap anyway).
    """
    make_builder(module="mempulse._api", source=API_PREAMBLE).emit_c_code(path)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python build_ffi.py OUTDIR")
    print(build(sys.argv[1]))
