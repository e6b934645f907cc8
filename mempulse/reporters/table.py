"""The table view: :func:`mempulse.format_trace_result` of the rows asked for."""
from mempulse._report import format_trace_result
from mempulse._result import TraceResult


def select_rows(result, sort="order", min_increment=0, top=None):
    """The table's rows: |increment| >= min_increment, sorted, then the first ``top``.

    ``sort``: ``"order"`` (of first execution), ``"increment"`` (largest
    growth first) or ``"peak"`` (highest peak RSS first).
    """
    rows = [r for r in result if abs(r.increment or 0) >= min_increment]
    if sort == "increment":
        rows.sort(key=lambda r: -(r.increment or 0))
    elif sort == "peak":
        rows.sort(key=lambda r: -(r.peak_rss if r.peak_rss is not None else -1))
    if top is not None:
        rows = rows[:top]
    return TraceResult(rows, result.metadata)


def render_table(result, sort="order", min_increment=0, top=None):
    """The table of ``result``'s selected rows, as text."""
    from mempulse._bare import table_text

    # A bare-@profile run's result holds one table per function.
    return table_text(result, lambda part: format_trace_result(select_rows(part, sort, min_increment, top)))
