"""``mempulse.plot``: a picture of a result: per-line increments and peaks,
and above them, when the result has a series (``result.series``), its memory
over time as ``mprof plot`` draws it, with the top lines marked."""
import os

MiB = float(1 << 20)
WIDTH_INCHES = 12.0
DPI = 100
# Figure height: a fixed part for titles and axes plus one strip per line.
BASE_INCHES = 1.6
ROW_INCHES = 0.3
HIGHLIGHT = 3  # how many worst lines each panel highlights
TIMELINE_INCHES = 3.0  # the memory-over-time panel, when there is a series

_GROW, _GROW_WORST = "#f4a7a0", "#c0392b"
_SHRINK = "#9cc3e4"
_PEAK, _PEAK_WORST = "#c7c7c7", "#d35400"


def _import_matplotlib():
    from mempulse._optional import import_optional

    # Only "not installed" gets the hint; a broken matplotlib is shown as it is.
    hint = "mempulse.plot needs matplotlib, which is not installed: pip install matplotlib"
    Figure = import_optional("matplotlib.figure", hint).Figure
    FigureCanvasAgg = import_optional("matplotlib.backends.backend_agg", hint).FigureCanvasAgg
    return Figure, FigureCanvasAgg


# What matplotlib's Agg canvas writes, by file extension.
FORMATS = ("eps", "jpeg", "jpg", "pdf", "png", "ps", "svg", "svgz", "tif", "tiff", "webp")


def check_plot_path(path):
    """Raise ImportError without matplotlib, ValueError for an unknown image extension.

    Checks without importing matplotlib, which would add tens of MB to the
    memory of the program about to be traced.
    """
    try:
        from importlib.util import find_spec
    except ImportError:  # Python 2
        from pkgutil import find_loader as find_spec
    if find_spec("matplotlib") is None:
        _import_matplotlib()  # raises the ImportError with the install hint
    extension = os.path.splitext(path)[1][1:].lower()
    supported = FORMATS
    if extension not in supported:
        raise ValueError(
            "cannot plot to %r: use one of the extensions %s"
            % (path, ", ".join("." + e for e in sorted(supported)))
        )


def _label(record):
    filename = record.filename
    cwd = os.path.join(os.getcwd(), "")
    if os.path.isabs(filename) and filename.startswith(cwd):
        filename = filename[len(cwd):]
    elif os.path.isabs(filename):
        parts = filename.split(os.sep)
        if len(parts) > 3:
            filename = os.path.join("...", parts[-2], parts[-1])
    return "%s:%d %s" % (filename, record.lineno, record.function)


def _peak_scores(records, lifetime):
    """How bad each record's peak is.

    A lifetime high-water mark only grows, so what points at a culprit is
    how much it rose at a line: compared with the line before in the same
    function (a line that calls into others ends after them, so the record
    order is not the time order across functions), or for a function's
    first line with the record before it.  Per-line peaks are their value.
    """
    scores, before, last_of = [], None, {}
    for record in records:
        peak = record.peak_rss
        key = (record.filename, record.function)
        if peak is None:
            scores.append(None)
            continue
        if not lifetime:
            scores.append(peak)
            continue
        previous = last_of.get(key, before)
        scores.append(0 if previous is None else max(peak - previous, 0))
        last_of[key] = before = peak
    return scores


def _worst(indices, score):
    ranked = [i for i in indices if score(i) is not None and score(i) > 0]
    ranked.sort(key=lambda i: (-score(i), i))
    # Lines far below the worst are not worth a highlight, even in the top 3.
    return set(i for i in ranked[:HIGHLIGHT] if score(i) >= score(ranked[0]) / 20.0)


def select_lines(result, max_lines):
    """The indices of the records :func:`plot` draws, and of the worst ones per panel.

    Returns ``(shown, worst_increment, worst_peak)``: ``shown`` in
    execution order, at most ``max_lines`` of them: the lines with the
    largest ``|increment|``, always including the worst peaks.
    """
    metadata = getattr(result, "metadata", None) or {}
    lifetime = metadata.get("peak", "lifetime") == "lifetime"
    peak_scores = _peak_scores(result, lifetime)
    everything = range(len(result))
    worst_increment = _worst(everything, lambda i: result[i].increment)
    worst_peak = _worst(everything, lambda i: peak_scores[i])
    must = sorted(worst_peak | worst_increment, key=lambda i: -abs(result[i].increment or 0))
    rest = sorted(everything, key=lambda i: (-abs(result[i].increment or 0), i))
    chosen = []
    for i in must + rest:
        if len(chosen) == max_lines:
            break
        if i not in chosen:
            chosen.append(i)
    return sorted(chosen), worst_increment, worst_peak


def _human(size):
    sign = "-" if size < 0 else "+"
    size = abs(size)
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return "%s%.1f %s" % (sign, size / float(scale), unit)
    return "%s%d B" % (sign, size)


def figure_height(lines, timeline=False):
    """Height in inches of a plot showing ``lines`` lines (and the timeline panel)."""
    return BASE_INCHES + ROW_INCHES * max(lines, 3) + (TIMELINE_INCHES if timeline else 0.0)


def _series(result):
    """The result's readings over time as tuples (empty for results without them)."""
    return [tuple(p) for p in (getattr(result, "series", None) or [])]


def _draw_timeline(figure, axes_box, result, series, worst_increment):
    """RSS and USS over time, the worst lines by increment marked where they first ran."""
    axes = figure.add_axes(axes_box)
    times = [p[0] for p in series]
    axes.plot(times, [(p[1] or 0) / MiB for p in series], color=_PEAK_WORST, linewidth=1.4, label="RSS")
    uss = [(p[0], p[2] / MiB) for p in series if p[2] is not None]
    if uss:
        axes.plot([t for t, _ in uss], [v for _, v in uss], color="#2c7fb8", linewidth=1.4, label="USS")
    marked = sorted(worst_increment, key=lambda i: -(result[i].increment or 0))
    for number, i in enumerate(marked, 1):
        record = result[i]
        at = [p for p in series if p[3] == record.filename and p[4] == record.lineno]
        if not at:
            continue
        axes.axvline(at[0][0], color=_GROW_WORST, linestyle="--", linewidth=0.9,
                     label="%d: %s (%s)" % (number, _label(record), _human(record.increment)))
        axes.annotate(str(number), (at[0][0], 1.0), xycoords=("data", "axes fraction"),
                      xytext=(3, -12), textcoords="offset points", color=_GROW_WORST, fontweight="bold")
    axes.set_xlim(0, max(times + [1e-9]))
    axes.set_ylim(0, None)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("memory (MiB)")
    axes.set_title("Memory over time (%d readings)" % len(series), fontsize=10)
    axes.grid(color="#e5e5e5")
    axes.set_axisbelow(True)
    axes.legend(loc="upper left", fontsize=8, framealpha=0.85)


def plot(result, path, max_lines=40, title=None):
    """Draw ``result`` to the image file ``path`` (PNG, SVG, PDF: by extension).

    Two panels of horizontal bars, one row per line labelled
    ``file:line function`` in execution order: the line's increment (the
    three largest growths in dark red, releases in blue) and its peak RSS
    (in orange the three worst: the highest peaks or, when
    ``result.metadata["peak"]`` is ``"lifetime"``, the lines after which
    the process's high-water mark rose most, since such a peak only grows).
    At most ``max_lines`` rows are drawn, those with the largest
    ``|increment|`` and the worst peaks; the title says how many of how
    many.  A result with readings over time (``result.series``) gets a
    panel above them, as ``mprof plot`` draws it: RSS and USS against
    seconds since the trace started, the three largest growths marked
    where they first ran.  Needs
    ``pip install matplotlib`` (the Agg renderer is used,
    pyplot's global state is not touched)::

        with mempulse.cMemoryUsageTracer(results.append):
            work()
        mempulse.plot(results[0], "memory.png")

    Returns the records drawn.
    """
    from mempulse._export import _check_result

    _check_result(result)
    if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 1:
        raise ValueError("max_lines must be a positive int, got %r" % (max_lines,))
    Figure, FigureCanvasAgg = _import_matplotlib()
    shown, worst_increment, worst_peak = select_lines(result, max_lines)
    records = [result[i] for i in shown]

    series = _series(result)
    height = figure_height(len(records), bool(series))
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
    FigureCanvasAgg(figure)  # attaches itself; older matplotlib needs it to save
    increments = figure.add_subplot(1, 2, 1)
    peaks = figure.add_subplot(1, 2, 2, sharey=increments)
    rows = list(range(len(records)))

    values = [(r.increment or 0) / MiB for r in records]
    colors = [
        _GROW_WORST if i in worst_increment else (_SHRINK if v < 0 else _GROW)
        for i, v in zip(shown, values)
    ]
    increments.barh(rows, values, color=colors, height=0.7)
    # Room beside the bars for the highlighted values.
    low, high = min(values + [0.0]), max(values + [0.0])
    span = (high - low) or 1.0
    increments.set_xlim(low - (0.05 * span if low < 0 else 0), high + 0.35 * span)
    increments.axvline(0, color="#555555", linewidth=0.8)
    increments.set_xlabel("increment (MiB)")
    increments.set_title("Increment per line", fontsize=10)
    for row, i, record in zip(rows, shown, records):
        if i in worst_increment:
            increments.annotate(
                _human(record.increment),
                (values[row], row),
                xytext=(4 if values[row] >= 0 else -4, 0),
                textcoords="offset points",
                ha="left" if values[row] >= 0 else "right",
                va="center",
                fontsize=8,
                fontweight="bold",
            )

    peak_values = [(r.peak_rss or 0) / MiB for r in records]
    peaks.barh(
        rows,
        peak_values,
        color=[_PEAK_WORST if i in worst_peak else _PEAK for i in shown],
        height=0.7,
    )
    peaks.set_xlabel("peak RSS (MiB)")
    lifetime = (getattr(result, "metadata", None) or {}).get("peak", "lifetime") == "lifetime"
    peaks.set_title(
        "Peak RSS by the end of the line" if lifetime else "Peak RSS while the line ran", fontsize=10
    )
    longest = max(peak_values + [0.0])
    for row, i, record in zip(rows, shown, records):
        if i in worst_peak:
            inside = peak_values[row] >= 0.3 * longest  # else the text would not fit
            peaks.annotate(
                _human(record.peak_rss).lstrip("+"),
                (peak_values[row], row),
                xytext=(-4 if inside else 4, 0),
                textcoords="offset points",
                ha="right" if inside else "left",
                va="center",
                fontsize=8,
                fontweight="bold",
                color="white" if inside else "black",
            )
    for axes in (increments, peaks):
        axes.grid(axis="x", color="#e5e5e5")
        axes.set_axisbelow(True)
    increments.set_yticks(rows)
    increments.set_yticklabels([_label(r) for r in records], fontsize=8)
    increments.set_ylim(max(len(records), 1) - 0.5, -0.5)  # first line at the top
    for label in peaks.get_yticklabels():
        label.set_visible(False)
    if not records:
        increments.text(0.5, 0.5, "no lines recorded", ha="center", transform=increments.transAxes)

    if title is None:
        title = "mempulse: memory per line"
        command = (getattr(result, "metadata", None) or {}).get("command")
        if command:
            title = "mempulse %s" % " ".join(command)
    figure.suptitle(title, fontsize=11, fontweight="bold")
    figure.text(
        0.5,
        1.0 - 0.62 / height,
        "%d of %d lines shown (largest |increment| and worst peaks), in execution order"
        % (len(records), len(result)),
        ha="center",
        fontsize=9,
        color="#444444",
    )
    top = 1.0 - 1.0 / height
    if series:
        box_height = (TIMELINE_INCHES - 0.9) / height
        _draw_timeline(figure, [0.08, top - box_height, 0.9, box_height], result, series, worst_increment)
        top -= TIMELINE_INCHES / height
    figure.subplots_adjust(left=0.3, right=0.98, wspace=0.08, top=top, bottom=0.75 / height)
    figure.savefig(path)
    return records
