"""Machine-readable results: JSON (both ways) and CSV.

JSON holds everything a :class:`TraceResult` has, so a loaded result is
equal to the live one and :func:`format_trace_result` prints it the same::

    {"format": "mempulse-trace", "version": 2,
     "metadata": {"interpreter": "CPython 3.11.7", "sampler": "c", ...},
     "records": [{"filename": "app.py", "lineno": 3, "function": "<module>",
                  "uss": 9293824, "swap": 0, "peak_rss": 11366400,
                  "hits": 1, "increment": 40050688, "max_increment": 40050688,
                  "anon_increment": 40054784, "file_increment": 0,
                  "shmem_increment": 0}, ...],
     "series": [{"time": 0.0, "rss": 11366400, "uss": 7241728,
                 "filename": null, "lineno": null}, ...]}

Version 1 (mempulse 1.0) had neither the last four record keys nor
"series"; :func:`load_json` reads it with those fields ``None`` and an
empty series.

CSV is one row per record with the record's first eight fields, then the
metadata repeated in every row (so the rows of several runs can be
concatenated), then the four later fields (after the others, so the
columns of mempulse 1.0 keep their places).

File names are bytes to the system and need not be UTF-8: JSON keeps each
byte that is not as the escape ``\\udcNN`` (Python 3's surrogateescape), so
:func:`load_json` gives the very name back on Python 2 and 3; CSV, for
people and spreadsheets, writes it ``\\xNN`` (see :mod:`mempulse._text`).
"""
import csv
import json
import sys

from mempulse import _text
from mempulse._result import MemoryPoint, TraceRecord, TraceResult

FORMAT = "mempulse-trace"
VERSION = 2
#: The versions load_json reads.
VERSIONS = (1, 2)

_PY2 = sys.version_info[0] == 2
_TEXT = (str, type(u""))
_INTEGERS = (int, type(1 << 70))  # long on Python 2
_SIZE_FIELDS = ("uss", "swap", "peak_rss", "increment")
#: The record fields version 1 has (the first eight); version 2 has them all.
V1_FIELDS = TraceRecord._fields[:8]
_LATER_FIELDS = TraceRecord._fields[8:]
_POINT_FIELDS = MemoryPoint._fields
_MAX_LINENO = (1 << 31) - 1  # a C int, as in code objects and the C core
#: The metadata columns of the CSV, in this order, after the record fields.
CSV_METADATA = ("interpreter", "platform", "sampler", "depth", "start_time", "duration", "peak", "driver")
#: Every column of the CSV, in order.
CSV_COLUMNS = list(TraceRecord._fields[:8]) + list(CSV_METADATA) + list(TraceRecord._fields[8:])


def result_to_dict(result):
    """``result`` as a dict of JSON types: ``format``, ``version``, ``metadata``, ``records``, ``series``."""
    _check_result(result)
    return {
        "format": FORMAT,
        "version": VERSION,
        "metadata": _json_value(dict(getattr(result, "metadata", None) or {})),
        "records": [_json_value(dict(zip(TraceRecord._fields, _full(record)))) for record in result],
        "series": [_json_value(dict(zip(_POINT_FIELDS, point))) for point in _series_of(result)],
    }


def _full(record):
    """All the fields of ``record``; an eight-field tuple gets ``None`` for the later ones."""
    return tuple(record) + (None,) * (len(TraceRecord._fields) - len(record))


def _series_of(result):
    series = getattr(result, "series", None) or []
    for point in series:
        if not isinstance(point, tuple) or len(point) != len(_POINT_FIELDS):
            raise TypeError("expected MemoryPoint items in the series, got %r" % (point,))
    return series


def _json_value(value):
    """``value`` with its Python 2 byte strings as unicode json can write."""
    if not _PY2:
        return value  # str (surrogates included) is what json writes
    if isinstance(value, bytes):
        return _text.to_json(value)
    if isinstance(value, dict):
        return dict((_json_value(k), _json_value(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def result_from_dict(data):
    """The :class:`TraceResult` that :func:`result_to_dict` described.

    Raises ValueError naming what is wrong when ``data`` is not such a dict.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("not a mempulse result: expected a JSON object with format %r" % FORMAT)
    version = data.get("version")
    if isinstance(version, bool) or version not in VERSIONS:
        raise ValueError(
            "unsupported mempulse result version %r (this mempulse reads %s)"
            % (version, " and ".join(str(v) for v in VERSIONS))
        )
    metadata, records = data.get("metadata"), data.get("records")
    if not isinstance(metadata, dict) or not isinstance(records, list):
        raise ValueError("bad mempulse result: 'metadata' must be an object and 'records' a list")
    series = data.get("series", []) if version >= 2 else []
    if not isinstance(series, list):
        raise ValueError("bad mempulse result: 'series' must be a list")
    fields = TraceRecord._fields if version >= 2 else V1_FIELDS
    result = TraceResult(metadata=metadata)
    for index, item in enumerate(records):
        result.append(_record_from_dict(index, item, fields))
    result.series = [_point_from_dict(index, item) for index, item in enumerate(series)]
    return result


def _is_integer(value):
    return isinstance(value, _INTEGERS) and not isinstance(value, bool)


def _point_from_dict(index, item):
    if not isinstance(item, dict) or set(item) != set(_POINT_FIELDS):
        raise ValueError(
            "bad mempulse result: series point %d must have exactly the fields %s"
            % (index, ", ".join(_POINT_FIELDS))
        )
    time = item["time"]
    if isinstance(time, bool) or not isinstance(time, (float,) + _INTEGERS):
        raise ValueError("bad mempulse result: series point %d: time must be a number" % index)
    if not _is_integer(item["rss"]) and item["rss"] is not None:
        raise ValueError("bad mempulse result: series point %d: rss must be an integer" % index)
    for name in ("uss", "lineno"):
        if item[name] is not None and not _is_integer(item[name]):
            raise ValueError("bad mempulse result: series point %d: %s must be an integer or null" % (index, name))
    filename = item["filename"]
    if filename is not None and not isinstance(filename, _TEXT):
        raise ValueError("bad mempulse result: series point %d: filename must be a string or null" % index)
    return MemoryPoint(
        float(time), item["rss"], item["uss"],
        None if filename is None else _text.from_json(filename), item["lineno"],
    )


def _record_from_dict(index, item, fields=TraceRecord._fields):
    if not isinstance(item, dict) or set(item) != set(fields):
        raise ValueError(
            "bad mempulse result: record %d must have exactly the fields %s"
            % (index, ", ".join(fields))
        )
    for name in ("filename", "function"):
        if not isinstance(item[name], _TEXT):
            raise ValueError("bad mempulse result: record %d: %s must be a string" % (index, name))
    for name in ("lineno", "hits") + _SIZE_FIELDS:
        value = item[name]
        if isinstance(value, bool) or not (
            isinstance(value, _INTEGERS) or (value is None and name in _SIZE_FIELDS)
        ):
            raise ValueError("bad mempulse result: record %d: %s must be an integer" % (index, name))
    for name in _LATER_FIELDS:
        if name in item and item[name] is not None and not _is_integer(item[name]):
            raise ValueError("bad mempulse result: record %d: %s must be an integer or null" % (index, name))
    if not 0 <= item["lineno"] <= _MAX_LINENO:
        raise ValueError(
            "bad mempulse result: record %d: lineno must be from 0 to %d, got %d"
            % (index, _MAX_LINENO, item["lineno"])
        )
    # The tracer gives native str (bytes on Python 2); json gives unicode.
    values = dict(item, filename=_text.from_json(item["filename"]), function=_text.from_json(item["function"]))
    return TraceRecord(**values)


def _check_result(result):
    if not isinstance(result, (list, tuple)):
        raise TypeError("expected a mempulse TraceResult (a list of TraceRecord), got %r" % (result,))
    for record in result:
        if not isinstance(record, tuple) or not len(V1_FIELDS) <= len(record) <= len(TraceRecord._fields):
            raise TypeError("expected TraceRecord items, got %r" % (record,))


def _write_text(fp, text):
    """Write ASCII ``text`` to a text or (Python 2) byte file."""
    try:
        fp.write(text)
    except TypeError:  # an io text file on Python 2 wants unicode
        fp.write(text.decode("ascii") if isinstance(text, bytes) else text.encode("ascii"))


def dump_json(result, fp, indent=1):
    """Write ``result`` (records and metadata) as JSON to the open file ``fp``::

        with open("trace.json", "w") as fp:
            mempulse.dump_json(result, fp)
    """
    text = json.dumps(result_to_dict(result), indent=indent, sort_keys=True)
    _write_text(fp, text + "\n")


def load_json(fp):
    """Read a result written by :func:`dump_json` back from the open file ``fp``::

        with open("trace.json") as fp:
            result = mempulse.load_json(fp)
        print(mempulse.format_trace_result(result))

    Raises ValueError when the file is not such JSON.
    """
    text = fp.read()
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError("not a mempulse result: invalid JSON: %s" % (e,))
    return result_from_dict(data)


def dump_csv(result, fp):
    """Write ``result`` as CSV to ``fp``: a header row, then one row per record.

    Columns: the first eight :class:`TraceRecord` fields, then the run
    metadata (``interpreter``, ``platform``, ``sampler``, ``depth``,
    ``start_time``, ``duration``, ``peak``, ``driver``) repeated in each
    row, then ``max_increment``, ``anon_increment``, ``file_increment`` and
    ``shmem_increment``; ``None`` is an empty cell.  Text is UTF-8 ready: a file name's bytes that are not UTF-8
    are written ``\\xNN``.  Open ``fp`` as the csv module asks
    (``newline=""`` on Python 3, ``"wb"`` on Python 2)::

        with open("trace.csv", "w", newline="", encoding="utf-8") as fp:
            mempulse.dump_csv(result, fp)
    """
    _check_result(result)
    metadata = getattr(result, "metadata", None) or {}
    tail = [_cell(metadata.get(key)) for key in CSV_METADATA]
    writer = csv.writer(fp)
    writer.writerow(CSV_COLUMNS)
    for record in result:
        values = [_cell(value) for value in _full(record)]
        writer.writerow(values[:8] + tail + values[8:])


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # all the digits, as json writes them
    if isinstance(value, _TEXT):
        return _text.display(value)  # native str; Python 2's csv writes bytes
    return value
