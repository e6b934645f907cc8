"""mempulse.plot: real PNG files, their size and dimensions checked."""
import os
import struct
import subprocess
import sys

import pytest
from conftest import MiB, line_of, touched

import mempulse
from mempulse import _plot

try:
    import matplotlib  # noqa: F401

    HAVE_MATPLOTLIB = True
except ImportError:
    HAVE_MATPLOTLIB = False

needs_matplotlib = pytest.mark.skipif(
    not HAVE_MATPLOTLIB, reason="matplotlib is not installed (no wheels for this interpreter)"
)


@pytest.fixture(scope="module", autouse=True)
def matplotlib_warmed_up(tmpdir_factory):
    """Draw once before the tests: matplotlib keeps font files open from its
    first drawing on, which the per-test fd-leak check would blame on the test."""
    if HAVE_MATPLOTLIB:
        mempulse.plot(fake_result(3), str(tmpdir_factory.mktemp("warm").join("w.png")))


def png_size(path):
    """(width, height) from the PNG's IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def expected_size(lines, timeline=False):
    return (
        int(round(_plot.WIDTH_INCHES * _plot.DPI)),
        int(round(_plot.figure_height(lines, timeline) * _plot.DPI)),
    )


def fake_result(n, peak="lifetime"):
    """``n`` records with increments that differ, the peak jumping on line 7."""
    records = []
    for i in range(n):
        increment = ((i * 7919) % 97 - 40) * 100000
        peak_rss = 50 * MiB + (800 * MiB if i >= 7 else 0)
        records.append(
            mempulse.TraceRecord("/srv/app/src/module.py", i + 1, "work", 40 * MiB, 0, peak_rss, 1, increment)
        )
    return mempulse.TraceResult(records, {"peak": peak, "command": ["app.py"]})


@needs_matplotlib
def test_plot_of_a_live_trace(tmpdir, tracer_class):
    results = []
    with tracer_class(results.append, 1):
        blob = touched(24 * MiB)  # L:plot-alloc
        blob.close()
    path = str(tmpdir.join("live.png"))
    drawn = mempulse.plot(results[0], path)
    assert drawn == list(results[0])  # few lines: all drawn, in order
    # With readings over time (TraceResult.series), the timeline panel is on top.
    assert png_size(path) == expected_size(len(results[0]), bool(getattr(results[0], "series", None)))
    assert os.path.getsize(path) > 10000  # bars, labels and text, not a blank image
    assert any(r.lineno == line_of("L:plot-alloc") for r in drawn)


@needs_matplotlib
def test_many_lines_are_capped_to_the_worst(tmpdir):
    result = fake_result(300)
    path = str(tmpdir.join("many.png"))
    drawn = mempulse.plot(result, path, max_lines=25)
    assert len(drawn) == 25
    assert png_size(path) == expected_size(25)
    # In execution order, and the ones kept are the largest |increment| ...
    assert [r.lineno for r in drawn] == sorted(r.lineno for r in drawn)
    smallest_kept = min(abs(r.increment) for r in drawn if r.lineno != 8)
    assert all(abs(r.increment) <= smallest_kept for r in result if r not in drawn)
    # ... plus the line where the lifetime peak jumped, whatever its increment.
    assert 8 in [r.lineno for r in drawn]
    # The default cap is 40.
    assert len(mempulse.plot(result, str(tmpdir.join("default.png")))) == 40
    assert png_size(str(tmpdir.join("default.png"))) == expected_size(40)


@needs_matplotlib
def test_other_formats_and_empty_results(tmpdir):
    svg = str(tmpdir.join("few.svg"))
    mempulse.plot(fake_result(5, peak="line"), svg, title="five lines")
    with open(svg) as f:
        text = f.read()
    assert "<svg" in text
    empty = str(tmpdir.join("empty.png"))
    assert mempulse.plot(mempulse.TraceResult(), empty) == []
    assert png_size(empty) == expected_size(0)


class WithSeries(mempulse.TraceResult):
    """A result with a series, whatever this mempulse's TraceResult holds (a subclass has a __dict__)."""


def with_series(result, points=300):
    """``result`` with readings over 3 s, RSS rising while line 8 runs; USS unknown now and then."""
    copy = WithSeries(list(result), result.metadata)
    copy.series = []
    for i in range(points):
        rss = 50 * MiB + (800 * MiB * min(i, 150) // 150 if i >= 70 else 0)
        lineno = 8 if 70 <= i < 150 else (i % 7) + 1
        uss = None if i % 40 == 3 else rss - 8 * MiB
        copy.series.append((i / 100.0, rss, uss, "/srv/app/src/module.py", lineno))
    return copy


def about(size, expected):
    """The same dimensions, give or take the pixel matplotlib 2 truncates (5.2 in * 100 dpi: 519)."""
    return size[0] == expected[0] and abs(size[1] - expected[1]) <= 1


@needs_matplotlib
def test_a_series_adds_the_memory_over_time_panel(tmpdir):
    result = with_series(fake_result(12))
    path = str(tmpdir.join("timeline.png"))
    drawn = mempulse.plot(result, path)
    assert len(drawn) == 12
    assert about(png_size(path), expected_size(12, timeline=True))
    assert expected_size(12, timeline=True)[1] - expected_size(12)[1] == int(_plot.TIMELINE_INCHES * _plot.DPI)
    # Without the series, the same result is the bars only.
    plain = str(tmpdir.join("plain.png"))
    mempulse.plot(fake_result(12), plain)
    assert about(png_size(plain), expected_size(12))
    # An empty series is no series.
    empty = WithSeries(fake_result(3), {})
    empty.series = []
    mempulse.plot(empty, str(tmpdir.join("e.png")))
    assert png_size(str(tmpdir.join("e.png"))) == expected_size(3)


@pytest.mark.parametrize("bad", [None, 42, [("too", "short")]])
def test_plot_of_something_else_is_a_type_error(tmpdir, bad):
    with pytest.raises(TypeError):
        mempulse.plot(bad, str(tmpdir.join("x.png")))
    assert not tmpdir.join("x.png").check()


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_max_lines(tmpdir, bad):
    with pytest.raises(ValueError) as info:
        mempulse.plot(fake_result(3), str(tmpdir.join("x.png")), max_lines=bad)
    assert "max_lines" in str(info.value)


def test_without_matplotlib_the_error_says_what_to_install(tmpdir):
    # A real interpreter in which importing matplotlib fails.
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import mempulse\n"
        "try:\n"
        "    mempulse.plot(mempulse.TraceResult(), 'x.png')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.check_output([sys.executable, "-c", code], cwd=str(tmpdir))
    assert out.decode().strip() == "mempulse.plot needs matplotlib, which is not installed: pip install matplotlib"
    assert not tmpdir.join("x.png").check()
