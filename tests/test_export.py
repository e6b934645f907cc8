"""Results as JSON and CSV, and the run metadata they carry."""
import copy
import csv
import io
import json
import pickle
import re
import sys
import time

import pytest
from conftest import MiB, line_of, record_at, touched

import mempulse
from mempulse._export import CSV_METADATA, V1_FIELDS

METADATA_KEYS = set(["interpreter", "platform", "sampler", "depth", "start_time", "duration", "peak", "driver",
                     "uss_age", "lifetime_peak_before"])


def live_result(tracer_class, depth=2):
    results = []
    before = time.time()
    with tracer_class(results.append, depth):
        blob = touched(16 * MiB)  # L:export-alloc
        blob.close()  # L:export-free
    return results[0], before


def test_live_result_carries_run_metadata(tracer_class):
    result, before = live_result(tracer_class)
    metadata = result.metadata
    assert set(metadata) == METADATA_KEYS
    assert metadata["sampler"] == ("c" if tracer_class is mempulse.cMemoryUsageTracer else "psutil")
    assert metadata["depth"] == 2
    # How old the USS anchor was at the end (full readings are on a budget),
    # and the process's peak as it was before the trace reset the mark.
    assert 0 <= metadata["uss_age"] < 3600
    assert metadata["lifetime_peak_before"] >= 12 * MiB
    # The C sampler resets the kernel's peak mark per reading; psutil cannot.
    assert metadata["peak"] == ("line" if tracer_class is mempulse.cMemoryUsageTracer else "lifetime")
    assert metadata["driver"] == ("sys.monitoring" if hasattr(sys, "monitoring") else "sys.settrace")
    implementation = "PyPy" if hasattr(sys, "pypy_version_info") else "CPython"
    assert metadata["interpreter"] == "%s %d.%d.%d" % ((implementation,) + tuple(sys.version_info[:3]))
    assert metadata["platform"].startswith("Linux-")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", metadata["start_time"])
    assert 0 <= metadata["duration"] <= time.time() - before + 1
    assert record_at(result, line_of("L:export-alloc")).increment >= 12 * MiB


def test_to_dict_has_the_record_fields_and_metadata(tracer_class):
    result, _ = live_result(tracer_class)
    data = result.to_dict()
    assert data["format"] == "mempulse-trace" and data["version"] == 2
    assert data["metadata"] == result.metadata
    assert len(data["records"]) == len(result)
    for item, record in zip(data["records"], result):
        assert item == record._asdict()
        assert set(["max_increment", "anon_increment", "file_increment", "shmem_increment"]) <= set(item)
    assert len(data["series"]) == len(result.series) >= 2
    for item, point in zip(data["series"], result.series):
        assert item == point._asdict()
        assert sorted(item) == ["filename", "lineno", "rss", "time", "uss"]
    json.dumps(data)  # JSON types only


def round_trip(result):
    stream = io.StringIO() if sys.version_info[0] > 2 else io.BytesIO()
    mempulse.dump_json(result, stream)
    text = stream.getvalue()
    loaded = mempulse.load_json(io.StringIO(text) if sys.version_info[0] > 2 else io.BytesIO(text))
    return loaded, text


def test_json_round_trip_is_exact_and_prints_the_same_table(tracer_class):
    result, _ = live_result(tracer_class)
    loaded, text = round_trip(result)
    assert type(loaded) is mempulse.TraceResult
    assert loaded == result
    assert loaded.metadata == result.metadata
    assert all(type(r) is mempulse.TraceRecord for r in loaded)
    assert [tuple(map(type, r)) for r in loaded] == [tuple(map(type, r)) for r in result]
    assert loaded.series == result.series and loaded.series
    assert all(type(p) is mempulse.MemoryPoint for p in loaded.series)
    assert [tuple(map(type, p)) for p in loaded.series] == [tuple(map(type, p)) for p in result.series]
    assert mempulse.format_trace_result(loaded) == mempulse.format_trace_result(result)
    # And again: the text is stable.
    assert round_trip(loaded)[1] == text


def test_json_through_real_files(tmpdir, tracer_class):
    result, _ = live_result(tracer_class)
    path = str(tmpdir.join("trace.json"))
    with open(path, "w") as f:
        mempulse.dump_json(result, f)
    with open(path) as f:
        loaded = mempulse.load_json(f)
    assert loaded == result and loaded.metadata == result.metadata
    assert loaded.series == result.series
    with io.open(path, "w") as f:  # an io text file on Python 2 too
        mempulse.dump_json(result, f)
    with open(path, "rb") as f:  # bytes are read too
        assert mempulse.load_json(f) == result


def test_unknown_values_and_hand_made_results():
    record = mempulse.TraceRecord("x.py", 3, "f", 1000, None, None, 2, -4096)
    assert record.max_increment is None and record.shmem_increment is None
    result = mempulse.TraceResult([record])
    assert result.metadata == {} and result.series == []
    loaded, text = round_trip(result)
    assert loaded == [record] and loaded.metadata == {} and loaded.series == []
    assert '"swap": null' in text and '"max_increment": null' in text
    # A plain eight-field tuple is written with the later fields null.
    loaded, _ = round_trip(mempulse.TraceResult([tuple(record[:8])]))
    assert loaded == [record]
    assert mempulse.format_trace_result(loaded) == mempulse.format_trace_result(result)


def test_trace_result_keeps_metadata_through_copy_and_pickle(tracer_class):
    result, _ = live_result(tracer_class, depth=1)
    assert result.series
    for clone in (copy.copy(result), copy.deepcopy(result), pickle.loads(pickle.dumps(result, 2))):
        assert type(clone) is mempulse.TraceResult
        assert clone == result and clone.metadata == result.metadata
        assert clone.series == result.series


def test_csv_has_the_record_fields_then_metadata_then_the_later_fields(tmpdir, tracer_class):
    result, _ = live_result(tracer_class)
    path = str(tmpdir.join("trace.csv"))
    if sys.version_info[0] > 2:
        f = open(path, "w", newline="")
    else:
        f = open(path, "wb")
    with f:
        mempulse.dump_csv(result, f)
    with open(path) as f:
        rows = list(csv.reader(f))
    later = ["max_increment", "anon_increment", "file_increment", "shmem_increment"]
    # The columns of mempulse 1.0 keep their places; the new ones come last.
    assert rows[0] == list(V1_FIELDS) + list(CSV_METADATA) + later
    assert len(rows) == len(result) + 1
    for row, record in zip(rows[1:], result):
        expected = ["" if v is None else str(v) for v in record]
        assert row[:8] == expected[:8]
        assert row[-4:] == expected[8:]
        tail = dict(zip(CSV_METADATA, row[8:-4]))
        assert tail["sampler"] == result.metadata["sampler"]
        assert int(tail["depth"]) == 2
        assert float(tail["duration"]) == result.metadata["duration"]
        assert tail["start_time"] == result.metadata["start_time"]
        assert tail["peak"] == result.metadata["peak"]
        assert tail["driver"] == result.metadata["driver"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "not a mempulse result"),
        ('{"format": "other"}', "not a mempulse result"),
        ('{"format": "mempulse-trace", "version": 99, "metadata": {}, "records": []}', "version 99"),
        ('{"format": "mempulse-trace", "version": 3, "metadata": {}, "records": []}',
         "unsupported mempulse result version 3 (this mempulse reads 1 and 2)"),
        ('{"format": "mempulse-trace", "version": true, "metadata": {}, "records": []}', "version True"),
        ('{"format": "mempulse-trace", "version": 2, "metadata": {}, "records": [], "series": {}}',
         "'series' must be a list"),
        ('{"format": "mempulse-trace", "version": 2, "metadata": {}, "records": [], "series": [{"time": 0}]}',
         "series point 0 must have exactly the fields"),
        ('{"format": "mempulse-trace", "version": 2, "metadata": {}, "records": [], "series": [{"time": "0", '
         '"rss": 1, "uss": null, "filename": null, "lineno": null}]}', "series point 0: time must be a number"),
        ('{"format": "mempulse-trace", "version": 2, "metadata": {}, "records": [], "series": [{"time": 0.5, '
         '"rss": 1, "uss": 1.5, "filename": null, "lineno": null}]}', "series point 0: uss must be an integer"),
        ('{"format": "mempulse-trace", "version": 2, "metadata": {}, "records": [], "series": [{"time": 0.5, '
         '"rss": 1, "uss": 1, "filename": 7, "lineno": 3}]}', "series point 0: filename must be a string"),
        # A version 2 record must have the later fields, a version 1 record must not.
        ('{"format": "mempulse-trace", "version": 2, "metadata": {}, "records": [{"filename": "a", '
         '"lineno": 1, "function": "f", "uss": 1, "swap": 0, "peak_rss": 1, "hits": 1, '
         '"increment": 0}]}', "record 0 must have exactly the fields"),
        ('{"format": "mempulse-trace", "version": 1, "metadata": {}, "records": [{"filename": "a", '
         '"lineno": 1, "function": "f", "uss": 1, "swap": 0, "peak_rss": 1, "hits": 1, '
         '"increment": 0, "max_increment": 0}]}', "record 0 must have exactly the fields"),
        ('{"format": "mempulse-trace", "version": 2, "metadata": {}, "records": [{"filename": "a", '
         '"lineno": 1, "function": "f", "uss": 1, "swap": 0, "peak_rss": 1, "hits": 1, '
         '"increment": 0, "max_increment": "big", "anon_increment": null, "file_increment": null, '
         '"shmem_increment": null}]}', "max_increment must be an integer or null"),
        ('{"format": "mempulse-trace", "version": 1, "metadata": [], "records": []}', "'metadata' must be"),
        ('{"format": "mempulse-trace", "version": 1, "metadata": {}, "records": [{"lineno": 1}]}',
         "record 0 must have exactly the fields"),
        ('{"format": "mempulse-trace", "version": 1, "metadata": {}, "records": [{"filename": "a", '
         '"lineno": "1", "function": "f", "uss": 1, "swap": 0, "peak_rss": 1, "hits": 1, '
         '"increment": 0}]}', "lineno must be an integer"),
        ('{"format": "mempulse-trace", "version": 1, "metadata": {}, "records": [{"filename": "a", '
         '"lineno": 2147483648, "function": "f", "uss": 1, "swap": 0, "peak_rss": 1, "hits": 1, '
         '"increment": 0}]}', "lineno must be from 0 to 2147483647, got 2147483648"),
        ('{"format": "mempulse-trace", "version": 1, "metadata": {}, "records": [{"filename": "a", '
         '"lineno": 1, "function": "f", "uss": 1, "swap": 0, "peak_rss": 1, "hits": null, '
         '"increment": 0}]}', "hits must be an integer"),
        ('{"format": "mempulse-trace", "version": 1, "metadata": {}, "records": [{"filename": 5, '
         '"lineno": 1, "function": "f", "uss": 1, "swap": 0, "peak_rss": 1, "hits": 1, '
         '"increment": 0}]}', "filename must be a string"),
    ],
)
def test_load_json_rejects_what_it_did_not_write(text, message):
    stream = io.StringIO(text if sys.version_info[0] > 2 else text.decode("ascii"))
    with pytest.raises(ValueError) as info:
        mempulse.load_json(stream)
    assert message in str(info.value)


@pytest.mark.parametrize("bad", [None, 42, "text", [("too", "short")]])
def test_dumping_something_else_is_a_type_error(bad):
    with pytest.raises(TypeError) as info:
        mempulse.dump_json(bad, io.StringIO())
    assert "TraceResult" in str(info.value) or "TraceRecord" in str(info.value)
    with pytest.raises(TypeError):
        mempulse.dump_csv(bad, io.StringIO())


# A file name that is not UTF-8 ("caf" + latin-1 e acute): what Python 3
# hands over for it (a lone surrogate, os.fsdecode's form) and Python 2 (bytes).
ODD_BYTES = b"/srv/caf\xe9.py"
ODD_NAME = ODD_BYTES if sys.version_info[0] == 2 else ODD_BYTES.decode("utf-8", "surrogateescape")


def odd_result(tracer_class):
    """A real trace of code whose file name is ODD_NAME."""
    code = compile("blob = touched(16 << 20)\nblob.close()\n", ODD_NAME, "exec")
    results = []
    with tracer_class(results.append, 2):
        exec(code, {"touched": touched})
    return results[0]


def test_a_file_name_that_is_not_utf8_goes_through_json_exactly(tracer_class):
    result = odd_result(tracer_class)
    odd = [r for r in result if r.filename == ODD_NAME]
    assert [r.lineno for r in odd] == [1, 2] and odd[0].increment >= 12 * MiB
    loaded, text = round_trip(result)
    assert "\\udce9" in text  # the escape both Python 2 and 3 read back
    assert loaded == result
    assert [r.filename for r in loaded if r.lineno in (1, 2)] == [ODD_NAME, ODD_NAME]
    json.dumps(result.to_dict())  # JSON types only, on Python 2 too


def test_json_of_a_latin1_name_reads_the_same_on_python_2_and_3():
    # What any mempulse wrote for ODD_BYTES, as json.dumps gives it.
    text = ('{"format": "mempulse-trace", "version": 1, "metadata": {}, "records": [{"filename": '
            '"/srv/caf\\udce9.py", "lineno": 1, "function": "f", "uss": 1, "swap": 0, "peak_rss": 1, '
            '"hits": 1, "increment": 0}]}')
    stream = io.StringIO(text if sys.version_info[0] > 2 else text.decode("ascii"))
    assert mempulse.load_json(stream)[0].filename == ODD_NAME


def test_csv_and_the_table_write_a_bad_byte_as_an_escape(tmpdir, tracer_class):
    result = odd_result(tracer_class)
    path = str(tmpdir.join("odd.csv"))
    if sys.version_info[0] > 2:
        f = io.open(path, "w", newline="", encoding="utf-8")
    else:
        f = open(path, "wb")
    with f:
        mempulse.dump_csv(result, f)
    with io.open(path, encoding="utf-8") as f:  # valid UTF-8
        text = f.read()
    assert text.count(u"/srv/caf\\xe9.py,") == 2
    table = mempulse.format_trace_result(result)
    assert table.count("/srv/caf\\xe9.py:") == 2


def test_names_with_utf8_and_surrogate_pairs_are_kept():
    names = [u"/srv/caf\u00e9.py", u"/srv/\U0001f600.py"]
    if sys.version_info[0] == 2:
        names = [n.encode("utf-8") for n in names]
    result = mempulse.TraceResult([mempulse.TraceRecord(n, 1, "f", 1, 0, 1, 1, 0) for n in names])
    loaded, _ = round_trip(result)
    assert [r.filename for r in loaded] == names
    table = mempulse.format_trace_result(result)
    if sys.version_info[0] == 2:
        table = table.decode("utf-8")
    assert u"caf\u00e9.py:1" in table and u"\U0001f600.py:1" in table


V1_TEXT = (
    '{"format": "mempulse-trace", "version": 1, "metadata": {"sampler": "c"}, "records": [{"filename": "a.py", '
    '"lineno": 3, "function": "f", "uss": 9293824, "swap": 0, "peak_rss": 11366400, "hits": 2, '
    '"increment": 40050688}]}'
)


def test_version_1_files_still_load():
    stream = io.StringIO(V1_TEXT if sys.version_info[0] > 2 else V1_TEXT.decode("ascii"))
    result = mempulse.load_json(stream)
    assert result == [mempulse.TraceRecord("a.py", 3, "f", 9293824, 0, 11366400, 2, 40050688)]
    record = result[0]
    assert (record.max_increment, record.anon_increment, record.file_increment, record.shmem_increment) == (None,) * 4
    assert result.series == [] and result.metadata == {"sampler": "c"}
    # Written again, it is version 2, and the table shows no kinds columns.
    loaded, text = round_trip(result)
    assert json.loads(text)["version"] == 2 and loaded == result
    assert "Anon" not in mempulse.format_trace_result(loaded)


def test_a_version_2_series_point_with_no_line_or_uss_round_trips():
    point = mempulse.MemoryPoint(0.25, 12 * MiB, None, None, None)
    result = mempulse.TraceResult([], series=[point, mempulse.MemoryPoint(1, 13 * MiB, 5, "a.py", 3)])
    loaded, text = round_trip(result)
    assert loaded.series == [point, mempulse.MemoryPoint(1.0, 13 * MiB, 5, "a.py", 3)]
    assert type(loaded.series[1].time) is float
    assert '"filename": null' in text
