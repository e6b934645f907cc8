"""Byte counts for people: the cells of the HTML report's tables."""


def add(total, value):
    """``total + value`` where None is unknown (unknown only when both are)."""
    if value is None:
        return total
    return value if total is None else total + value


def highest(a, b):
    """The larger of two values, None being unknown."""
    if a is None:
        return b
    return a if b is None else max(a, b)


def highest_of(values):
    best = None
    for value in values:
        best = highest(best, value)
    return best


def human(size, signed=False):
    """``size`` bytes as ``64.0 MiB`` (``+64.0 MiB`` with ``signed``); ``-`` for None."""
    if size is None:
        return u"\u2013"
    sign = u"-" if size < 0 else (u"+" if signed and size > 0 else u"")
    size = abs(size)
    for unit, scale in ((u"GiB", 1 << 30), (u"MiB", 1 << 20), (u"KiB", 1 << 10)):
        if size >= scale:
            return u"%s%.1f %s" % (sign, size / float(scale), unit)
    return u"%s%d B" % (sign, size)


def cell(value, signed=False, size=True):
    """``{"text", "exact", "sort"}``: what a table cell shows, its tooltip, its sort key."""
    if value is None:
        return {"text": u"\u2013", "exact": u"unknown", "sort": u""}
    exact = u"{:,}".format(value)
    if signed and value > 0:
        exact = u"+" + exact
    if not size:
        return {"text": exact, "exact": exact, "sort": value}
    return {"text": human(value, signed), "exact": exact + u" bytes", "sort": value}


def heat(increment, scale):
    """The heat bar of a line: ``{"width": percent of the largest |increment|, "kind"}``."""
    if not increment:
        return {"width": 0, "kind": u"none"}
    width = min(100.0, 100.0 * abs(increment) / float(scale or 1))
    return {"width": round(max(width, 1.0), 1), "kind": u"grow" if increment > 0 else u"shrink"}
