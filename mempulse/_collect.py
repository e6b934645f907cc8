"""What a finished C tracer holds, as Python: its records and its series.

THE place that turns a C tracer's result into :class:`TraceRecord` and
:class:`MemoryPoint` (a trace's, or an aggregate merged in C)::

    head, trace_result = collect(c_tracer, names, metadata)   # then C may be freed

``collect`` copies the head (status, USS anchor age, lost events, counts,
the peak before the trace), the records and the series into one bytearray
with one C call (``mp_result``, where a dozen calls and cffi struct reads
would otherwise run per block), and ``struct`` unpacks it.  The series
is decoded only when someone reads ``result.series``: most results of a
service's blocks never are, and the fixed cost of a block stays flat.
"""
import struct

from mempulse import _core, _result

# The layouts of the head, mp_record and mp_point (csrc/mempulse.h):
# standard sizes, no padding; checked against cffi's sizes once (read).
_HEAD = struct.Struct("=9q")
_RECORD = struct.Struct("=ii9q")
_POINT = struct.Struct("=qqqii")
_layout_checked = []

# Indexes into the head (MP_RESULT_* in csrc/mempulse.h).
STATUS, ERRNO, USS_AGE, DROPPED, RECORDS, POINTS, PEAK_BEFORE, PEAK_PER_LINE, UNKNOWN = range(9)


def collect(c_tracer, names, metadata=None):
    """A finished C tracer's result, copied out in one C call and decoded:
    ``(head, result)``, the MP_RESULT_* values (by the indexes above) and a
    :class:`TraceResult` (``names``: code id -> (filename, function))."""
    ffi, lib = _core.ffi, _core.lib
    if not _layout_checked:
        if (ffi.sizeof("mp_record"), ffi.sizeof("mp_point")) != (_RECORD.size, _POINT.size):
            raise RuntimeError("mempulse: the C core's record layout is not the expected one")
        _layout_checked.append(True)
    size = lib.mp_result_size(c_tracer)
    rows = bytearray(size)
    if lib.mp_result(c_tracer, ffi.from_buffer(rows), size) != size:
        raise RuntimeError("mempulse: the C core's result did not fit its size")
    head = _HEAD.unpack_from(rows)
    start = _HEAD.size
    end = start + head[RECORDS] * _RECORD.size
    if not head[RECORDS]:
        records = []
    elif head[UNKNOWN]:
        records = _records_with_unknowns(_rows(_RECORD, rows, start, end), names)
    else:  # every value known: no None to put in
        new, cls = tuple.__new__, _result.TraceRecord
        records = []
        for code_id, lineno, uss, swap, peak, hits, inc, top, anon, file_, shmem in _rows(_RECORD, rows, start, end):
            name = names[code_id]
            records.append(new(cls, (name[0], lineno, name[1], uss, swap, peak, hits, inc, top, anon, file_, shmem)))
    series = _result.Lazy((_points, (rows, end, names))) if head[POINTS] else None
    return head, _result.TraceResult(records, metadata, series)


if hasattr(_RECORD, "iter_unpack"):

    def _rows(layout, rows, start, end):
        return layout.iter_unpack(rows[start:end])

else:  # Python 2

    def _rows(layout, rows, start, end):
        return [layout.unpack_from(rows, i) for i in range(start, end, layout.size)]


def _records_with_unknowns(rows, names):
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
        for code_id, lineno, uss, swap, peak, hits, inc, top, anon, file_, shmem in rows
    ]


def _points(rows, start, names):
    none, new, cls = _core.NONE, tuple.__new__, _result.MemoryPoint
    out = []
    for time_ns, rss, uss, code_id, lineno in _rows(_POINT, rows, start, len(rows)):
        filename, line = (names[code_id][0], lineno) if code_id >= 0 else (None, None)
        out.append(new(cls, (
            max(time_ns, 0) / 1e9,
            None if rss == none else rss,
            None if uss == none else uss,
            filename, line,
        )))
    return out
