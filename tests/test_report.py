"""The report table (formatted by the C core)."""
# -*- coding: utf-8 -*-
import pytest

import mempulse
from mempulse import TraceRecord

ROWS = [
    TraceRecord("/srv/app/job.py", 12, "load", 26525696, 0, 28057600, 1, 26525696),
    TraceRecord("/srv/app/job.py", 13, "load", 147431424, None, 148926464, 1000, -1048576),
    TraceRecord("job.py", 7, "main", None, None, None, 3, 0),
]


def widths(text):
    return set(len(line) for line in text.splitlines())


HEADER = ["Callsite", "Method", "Name", "USS", "Swap", "Peak", "RSS", "Hits", "Increment", "(net)", "Max/exec"]
KIND_HEADER = ["Anon", "(net)", "File", "(net)", "Shmem", "(net)"]


def test_columns_and_numbers():
    # Eight-field records (as built by hand before 1.1): no max, no kinds.
    table = mempulse.format_trace_result(ROWS)
    lines = table.splitlines()
    header = lines[0].split()
    assert header == HEADER
    assert set(lines[1]) == set("-")
    assert len(lines) == 2 + len(ROWS)
    assert lines[2].split() == [
        "/srv/app/job.py:12", "load", "26,525,696", "0", "28,057,600", "1", "+26,525,696", "-",
    ]
    assert lines[3].split() == [
        "/srv/app/job.py:13", "load", "147,431,424", "-", "148,926,464", "1,000", "-1,048,576", "-",
    ]
    assert lines[4].split() == ["job.py:7", "main", "-", "-", "-", "3", "0", "-"]
    assert len(widths(table)) == 1


FULL_ROWS = [
    # A loop line: 1,000 executions, net +1 MiB, the largest one +64 KiB,
    # all of it anonymous memory.
    TraceRecord("job.py", 12, "load", 26525696, 0, 28057600, 1000, 1048576, 65536, 1048576, 0, 0),
    TraceRecord("job.py", 13, "load", 26525696, 0, 28057600, 1, 0, 0, -4096, 67108864, -67104768),
    TraceRecord("job.py", 14, "load", 26525696, 0, 28057600, 1, 0, 0, None, None, None),
]


def test_max_per_execution_and_kinds_columns():
    lines = mempulse.format_trace_result(FULL_ROWS).splitlines()
    assert lines[0].split() == HEADER + KIND_HEADER
    # The first columns stay where they were.
    narrow = mempulse.format_trace_result(FULL_ROWS, kinds=False).splitlines()
    assert lines[0].index("Max/exec") == narrow[0].index("Max/exec")
    assert lines[2].split()[6:] == ["+1,048,576", "+65,536", "+1,048,576", "0", "0"]
    assert lines[3].split()[6:] == ["0", "0", "-4,096", "+67,108,864", "-67,104,768"]
    assert lines[4].split()[6:] == ["0", "0", "-", "-", "-"]
    assert len(widths("\n".join(lines))) == 1


def test_kinds_can_be_hidden_and_hide_themselves_when_unknown():
    hidden = mempulse.format_trace_result(FULL_ROWS, kinds=False).splitlines()
    assert hidden[0].split() == HEADER
    assert hidden[2].split()[6:] == ["+1,048,576", "+65,536"]
    # All unknown (psutil off Linux, a version 1 file): hidden by themselves.
    assert mempulse.format_trace_result(FULL_ROWS[2:]).splitlines()[0].split() == HEADER
    shown = mempulse.format_trace_result(FULL_ROWS[2:], kinds=True).splitlines()
    assert shown[0].split() == HEADER + KIND_HEADER
    assert shown[2].split()[-3:] == ["-", "-", "-"]
    with pytest.raises(TypeError):
        mempulse.format_trace_result(FULL_ROWS, kinds="no")


def test_long_paths_are_shortened_from_the_left_and_stay_aligned():
    deep = "/" + "/".join(["directory%d" % i for i in range(20)]) + "/module.py"
    rows = [TraceRecord(deep, 123, "f", 1, 0, 1, 1, 0), TraceRecord("a.py", 1, "g", 1, 0, 1, 1, 0)]
    table = mempulse.format_trace_result(rows)
    first = table.splitlines()[2]
    callsite = first.split()[0]
    assert callsite.startswith(".../") and callsite.endswith("/module.py:123")
    assert len(callsite) <= 40
    assert len(widths(table)) == 1


def test_non_ascii_names_stay_aligned():
    rows = [
        TraceRecord(u"/tmp/d\u00e9j\u00e0/\u0444\u0430\u0439\u043b.py", 5, u"f\u00fc\u00df", 1, 0, 1, 1, 0),
        TraceRecord("plain.py", 6, "g", 1, 0, 1, 1, 0),
    ]
    table = mempulse.format_trace_result(rows)
    if isinstance(table, bytes):  # Python 2: native str is bytes
        table = table.decode("utf-8")
    assert u"\u0444\u0430\u0439\u043b.py:5" in table
    assert len(widths(table)) == 1


def test_empty_result_is_just_the_header():
    table = mempulse.format_trace_result([])
    assert len(table.splitlines()) == 2


def test_large_tables_are_formatted_whole():
    rows = [TraceRecord("file%d.py" % i, i, "f", i << 20, 0, i << 21, i, -i) for i in range(5000)]
    table = mempulse.format_trace_result(rows)
    assert len(table.splitlines()) == 5002
    assert "file4999.py:4999" in table


def test_extreme_values():
    rows = [TraceRecord("x.py", 1, "f", 2 ** 63 - 1, 0, 0, 0, -(2 ** 63) + 1)]
    table = mempulse.format_trace_result(rows)
    assert "9,223,372,036,854,775,807" in table
    assert "-9,223,372,036,854,775,807" in table


def test_rows_must_be_records():
    with pytest.raises((TypeError, IndexError)):
        mempulse.format_trace_result([("x.py", 1)])


def test_paths_below_the_current_directory_are_shown_relative():
    import os

    inside = os.path.join(os.getcwd(), "pkg", "mod.py")
    table = mempulse.format_trace_result([TraceRecord(inside, 3, "f", 1, 0, 1, 1, 0)])
    assert table.splitlines()[2].split()[0] == os.path.join("pkg", "mod.py") + ":3"


def test_a_live_table_says_what_its_peaks_are(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        x = 1
    last = mempulse.format_trace_result(results[0]).splitlines()[-1]
    if tracer_class is mempulse.cMemoryUsageTracer:
        assert last == "Peak RSS: the highest RSS while the line ran"
    else:
        assert last == "Peak RSS: the process's highest RSS so far (per-line peaks unavailable)"
    # Records without metadata: just the table.
    assert not mempulse.format_trace_result(list(results[0])).splitlines()[-1].startswith("Peak RSS:")
    assert x == 1


@pytest.mark.parametrize("record, error", [
    (TraceRecord("a.py", 1 << 31, "f", 1, 0, 1, 1, 0), ValueError),  # lineno is a C int
    (TraceRecord("a.py", 1, "f", 1 << 64, 0, 1, 1, 0), ValueError),
    (TraceRecord("a.py", "one", "f", 1, 0, 1, 1, 0), TypeError),
    (("a.py", 1), TypeError),
])
def test_a_record_that_does_not_fit_is_an_error_naming_it(record, error):
    with pytest.raises(error) as info:
        mempulse.format_trace_result([TraceRecord("ok.py", 1, "g", 1, 0, 1, 1, 0), record])
    assert "cannot format record 1 " in str(info.value)
