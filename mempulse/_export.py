"""Machine-readable results: JSON (both ways) and CSV.

JSON holds everything a :class:`TraceResult` has, so a loaded result is
equal to the live one and :func:`format_trace_result` prints it the same::

    {"format": "mempulse-trace", "version": 1,
     "metadata": {"interpreter": "CPython 3.11.7", "sampler": "c", ...},
     "records": [{"filename": "app.py", "lineno": 3, "function": "<module>",
                  "uss": 9293824, "swap": 0, "peak_rss": 11366400,
                  "hits": 1, "increment": 40050688}, ...]}

CSV is one row per record with the record's fields, then the metadata
repeated in every row (so the rows of several runs can be concatenated).

File names are bytes to the system and need not be UTF-8: JSON keeps each
byte that is not as the escape ``\\udcNN`` (Python 3's surrogateescape), so
:func:`load_json` gives the very name back on Python 2 and 3; CSV, for
people and spreadsheets, writes it ``\\xNN`` (see :mod:`mempulse._text`).
"""
import csv
import json
import sys

from mempulse import _text
from mempulse._result import TraceRecord, TraceResult

FORMAT = "mempulse-trace"
VERSION = 1

_PY2 = sys.version_info[0] == 2
_TEXT = (str, type(u""))
_INTEGERS = (int, type(1 << 70))  # long on Python 2
_SIZE_FIELDS = ("uss", "swap", "peak_rss", "increment")
_MAX_LINENO = (1 << 31) - 1  # a C int, as in code objects and the C core
#: The metadata columns of the CSV, in this order, after the record fields.
CSV_METADATA = ("interpreter", "platform", "sampler", "depth", "start_time", "duration", "peak", "driver")


def result_to_dict(result):
    """``result`` as a dict of JSON types: ``format``, ``version``, ``metadata``, ``records``."""
    _check_result(result)
    return {
        "format": FORMAT,
        "version": VERSION,
        "metadata": _json_value(dict(getattr(result, "metadata", None) or {})),
        "records": [_json_value(dict(zip(TraceRecord._fields, record))) for record in result],
    }


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
    if data.get("version") != VERSION:
        raise ValueError(
            "unsupported mempulse result version %r (this mempulse reads %d)"
            % (data.get("version"), VERSION)
        )
    metadata, records = data.get("metadata"), data.get("records")
    if not isinstance(metadata, dict) or not isinstance(records, list):
        raise ValueError("bad mempulse result: 'metadata' must be an object and 'records' a list")
    result = TraceResult(metadata=metadata)
    for index, item in enumerate(records):
        result.append(_record_from_dict(index, item))
    return result


def _record_from_dict(index, item):
    if not isinstance(item, dict) or set(item) != set(TraceRecord._fields):
        raise ValueError(
            "bad mempulse result: record %d must have exactly the fields %s"
            % (index, ", ".join(TraceRecord._fields))
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
        if not isinstance(record, tuple) or len(record) != len(TraceRecord._fields):
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

    Columns: the :class:`TraceRecord` fields, then the run metadata
    (``interpreter``, ``platform``, ``sampler``, ``depth``, ``start_time``,
    ``duration``, ``peak``, ``driver``) repeated in each row; ``None`` is an
    empty cell.  Text is UTF-8 ready: a file name's bytes that are not UTF-8
    are written ``\\xNN``.  Open ``fp`` as the csv module asks
    (``newline=""`` on Python 3, ``"wb"`` on Python 2)::

        with open("trace.csv", "w", newline="", encoding="utf-8") as fp:
            mempulse.dump_csv(result, fp)
    """
    _check_result(result)
    metadata = getattr(result, "metadata", None) or {}
    tail = [_cell(metadata.get(key)) for key in CSV_METADATA]
    writer = csv.writer(fp)
    writer.writerow(list(TraceRecord._fields) + list(CSV_METADATA))
    for record in result:
        writer.writerow([_cell(value) for value in record] + tail)


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # all the digits, as json writes them
    if isinstance(value, _TEXT):
        return _text.display(value)  # native str; Python 2's csv writes bytes
    return value
