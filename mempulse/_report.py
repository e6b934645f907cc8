"""The report table, formatted by the C core (csrc/report.c)."""
from mempulse import _core
from mempulse._core import to_c
from mempulse._text import display


def _utf8(name):
    # A file name's bytes that are not UTF-8 show as \xNN (see _text).
    text = display(name)
    return text if isinstance(text, bytes) else text.encode("utf-8")


def format_trace_result(result, kinds=None):
    """Format trace records as the line-by-line table, one row per callsite.

    Columns: ``Callsite`` (``file:line``), ``Method Name``, ``USS``, ``Swap``,
    ``Peak RSS``, ``Hits``, ``Increment (net)`` (the sum over the line's
    executions), ``Max/exec`` (the largest increment of one execution), then
    the resident memory the line added by kind, net like the increment:
    ``Anon (net)``, ``File (net)``, ``Shmem (net)``.  ``kinds``: ``False``
    hides those three, ``True`` shows them, ``None`` (the default) shows them
    when some record knows one.  Byte counts have thousands separators and
    ``-`` stands for a value the platform could not give.  A result that
    says what its peaks are (``result.metadata["peak"]``) gets a last line
    saying it::

        with mempulse.cMemoryUsageTracer(lambda r: print(mempulse.format_trace_result(r))):
            blob = b"x" * (64 << 20)
        print(mempulse.format_trace_result(result, kinds=False))  # narrower
    """
    if kinds not in (None, True, False):
        raise TypeError("kinds must be None, True or False, got %r" % (kinds,))
    ffi, lib = _core.load()[:2]  # the core formats; loaded now, not at import
    rows = ffi.new("mp_row[]", max(len(result), 1))
    keep = []  # the row structs point into these buffers
    for index, (row, record) in enumerate(zip(rows, result)):
        try:
            _fill(ffi, row, record, keep)
        except (TypeError, IndexError) as e:  # not shaped like a TraceRecord
            raise TypeError("cannot format record %d %r: %s" % (index, tuple(record), e))
        except (OverflowError, ValueError) as e:  # a value the table cannot hold
            raise ValueError("cannot format record %d %r: %s" % (index, tuple(record), e))
    needed = ffi.new("size_t *")
    size = 4096
    while True:
        buf = ffi.new("char[]", size)
        status = lib.mp_format_table(rows, len(result), _KINDS[kinds], buf, size, needed)
        if status == lib.MP_ERANGE:
            size = needed[0]
            continue
        if status != 0:
            raise RuntimeError("mempulse: cannot format the report: %s" % _core.strerror(status))
        text = ffi.string(buf)
        text = text if isinstance(text, str) else text.decode("utf-8", "replace")
        return text + _PEAK_NOTES.get((getattr(result, "metadata", None) or {}).get("peak"), "")


def _fill(ffi, row, record, keep):
    """The C row of ``record``; cffi raises for a value that does not fit (lineno is int32)."""
    filename = ffi.new("char[]", _utf8(record[0]))
    function = ffi.new("char[]", _utf8(record[2]))
    keep.append((filename, function))
    row.filename = filename
    row.lineno = record[1]
    row.function = function
    row.uss = to_c(record[3])
    row.swap = to_c(record[4])
    row.peak_rss = to_c(record[5])
    row.hits = to_c(record[6])
    row.increment = to_c(record[7])
    # Eight-field tuples (results from before these fields) have none.
    extra = tuple(record[8:12]) + (None,) * (12 - max(len(record), 8))
    row.max_increment = to_c(extra[0])
    row.anon_increment = to_c(extra[1])
    row.file_increment = to_c(extra[2])
    row.shmem_increment = to_c(extra[3])


_KINDS = {None: -1, True: 1, False: 0}  # MP_KINDS_AUTO, shown, hidden


_PEAK_NOTES = {
    "line": "Peak RSS: the highest RSS while the line ran\n",
    "lifetime": "Peak RSS: the process's highest RSS so far (per-line peaks unavailable)\n",
}
