"""Memory over time as an inline SVG chart: RSS and USS of ``result.series``.

The C core records the series (``TraceResult.series``, a list of
``MemoryPoint(time, rss, uss, filename, lineno)``); this turns it into the
coordinates the template draws, with the top lines marked where they ran.
An empty series (a result saved before series existed) gives None: the
page then says that no timeline was recorded.
"""
import math

WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 16, 36
MiB = float(1 << 20)


def nice_ticks(high, count=5):
    """About ``count`` round tick values from 0 to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / float(count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks, value = [], 0.0
    while value < high + step * 0.5:
        ticks.append(value)
        value += step
    return ticks


def _label(value, unit):
    """A tick's label: 3 significant digits below 100 (0.005 s, 2.5 MiB), whole numbers above."""
    text = u"%d" % round(value) if value >= 100 else u"%.3g" % value
    return text + unit


def timeline_svg(series, marks):
    """The chart's coordinates, or None for an empty series.

    ``marks``: ``[{"filename", "lineno", "anchor", "label"}]``, the lines to
    mark at the first reading taken while they ran.
    """
    points = [tuple(p) for p in series]
    if not points:
        return None
    tmax = max(max(p[0] for p in points), 0.01)  # a single reading still gets an axis
    ymax_bytes = max(max(p[1] or 0, p[2] or 0) for p in points) or 1
    yticks = nice_ticks(ymax_bytes / MiB)
    ytop = yticks[-1] * MiB
    xticks = nice_ticks(tmax, 6)
    xtop = xticks[-1] or 1e-9
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t):
        return round(LEFT + plot_w * t / xtop, 1)

    def y(v):
        return round(TOP + plot_h * (1.0 - v / ytop), 1)

    rss = u" ".join(u"%s,%s" % (x(p[0]), y(p[1])) for p in points if p[1] is not None)
    uss_segments, segment = [], []
    for p in points:
        if p[2] is None:
            if segment:
                uss_segments.append(u" ".join(segment))
            segment = []
        else:
            segment.append(u"%s,%s" % (x(p[0]), y(p[2])))
    if segment:
        uss_segments.append(u" ".join(segment))
    drawn = []
    for number, mark in enumerate(marks, 1):
        at = [p for p in points if p[3] == mark["filename"] and p[4] == mark["lineno"]]
        if at:
            drawn.append(dict(mark, number=number, x=x(at[0][0]), y=y(max(q[1] or 0 for q in at)),
                              time=u"%.3f s" % at[0][0]))
    peak = max(points, key=lambda p: p[1] or 0)
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "top": TOP,
        "right": WIDTH - RIGHT, "bottom": HEIGHT - BOTTOM,
        "rss": rss, "uss": uss_segments,
        "xticks": [(x(t), _label(t, u" s")) for t in xticks],
        "yticks": [(y(v * MiB), _label(v, u" MiB")) for v in yticks],
        "marks": drawn,
        "count": len(points),
        "duration": u"%.3f s" % tmax,
        "peak": peak,
        "peak_x": x(peak[0]), "peak_y": y(peak[1] or 0),
    }
