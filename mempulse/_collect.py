"""What a finished C tracer holds, as Python: its records and its series.

THE place that turns ``mp_records`` / ``mp_series`` output into
:class:`TraceRecord` and :class:`MemoryPoint` (a tracer's result, or an
aggregate merged in C)::

    result = TraceResult(records(c_tracer, names), metadata)
    result.series = series(c_tracer, names)

Both copy the C array out into a bytearray and unpack it with ``struct``: a cffi
struct field costs about 0.3 us to read, and a record has twelve.  The
series is copied at once (the tracer is freed next) but decoded only when
someone reads ``result.series``: most results of a service's blocks never
are, and the fixed cost of a block stays flat.
"""
import struct

from mempulse import _core, _result

# The layouts of mp_record and mp_point (csrc/mempulse.h): standard sizes,
# no padding; checked against cffi's sizes once.
_RECORD = struct.Struct("=ii9q")
_POINT = struct.Struct("=qqqii")
_ARRAYS = {}  # struct name -> (cffi array type, packed as its layout?)


def _copy(name, layout, count, fill, c_tracer):
    """The ``count`` structs ``fill(c_tracer, array, count)`` writes, as a
    bytearray to unpack (or, where cffi's layout is not ours, a list of tuples)."""
    ffi = _core.ffi
    found = _ARRAYS.get(name)
    if found is None:
        found = _ARRAYS[name] = (ffi.typeof(name + "[]"), ffi.sizeof(name) == layout.size)
    array_type, packed = found
    if not packed:  # an ABI we did not expect: slow but right
        array = ffi.new(array_type, count)
        count = fill(c_tracer, array, count)
        fields = [field for field, _ in ffi.typeof(name).fields]
        return [tuple(getattr(array[i], field) for field in fields) for i in range(count)]
    # C writes straight into the bytes struct unpacks: no copy between.
    rows = bytearray(count * layout.size)
    written = fill(c_tracer, ffi.from_buffer(array_type, rows), count)
    if written < count:
        del rows[written * layout.size:]
    return rows


def _unpack(rows, layout):
    if isinstance(rows, list):
        return rows
    if hasattr(layout, "iter_unpack"):
        return layout.iter_unpack(rows)
    return [layout.unpack_from(rows, i) for i in range(0, len(rows), layout.size)]  # Python 2


def records(c_tracer, names):
    """The tracer's callsites as :class:`TraceRecord`, in order of first execution.

    ``names`` maps the tracer's code ids to (filename, function).
    """
    lib = _core.load()[1]
    count = lib.mp_count(c_tracer)
    if not count:
        return []
    rows = _copy("mp_record", _RECORD, count, lib.mp_records, c_tracer)
    none, new, cls = _core.NONE, tuple.__new__, _result.TraceRecord
    return [
        new(cls, (
            names[code_id][0], lineno, names[code_id][1],
            None if uss == none else uss,
            None if swap == none else swap,
            None if peak == none else peak,
            hits, inc,
            None if top == none else top,
            None if anon == none else anon,
            None if file_ == none else file_,
            None if shmem == none else shmem,
        ))
        for code_id, lineno, uss, swap, peak, hits, inc, top, anon, file_, shmem in _unpack(rows, _RECORD)
    ]


def series(c_tracer, names):
    """The tracer's memory over time, for ``TraceResult.series`` (decoded
    into :class:`MemoryPoint` when first read)."""
    lib = _core.load()[1]
    count = lib.mp_series_count(c_tracer)
    if not count:
        return []
    rows = _copy("mp_point", _POINT, count, lib.mp_series, c_tracer)
    return _result.Lazy(_points, rows, names)


def _points(rows, names):
    none, new, cls = _core.NONE, tuple.__new__, _result.MemoryPoint
    out = []
    for time_ns, rss, uss, code_id, lineno in _unpack(rows, _POINT):
        filename, line = (names[code_id][0], lineno) if code_id >= 0 else (None, None)
        out.append(new(cls, (
            max(time_ns, 0) / 1e9,
            None if rss == none else rss,
            None if uss == none else uss,
            filename, line,
        )))
    return out
