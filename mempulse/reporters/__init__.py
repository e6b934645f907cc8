"""The views of a result: table, html, json, csv, png.

Each format is checked before anything runs (:func:`check`: a missing
package, a path the picture cannot be drawn to) and then written by
:func:`write` to a file, ``"-"`` (stdout) or an open stream.  The table is
:mod:`.table`, the annotated-source page :mod:`.html_report`, the picture
:func:`mempulse.plot`; JSON and CSV are :mod:`mempulse._export`'s format.
"""
import io
import os
import sys

from mempulse._options import FORMATS

_PY2 = sys.version_info[0] == 2

#: Output file extensions and the format they stand for.
_BY_EXTENSION = {".html": "html", ".htm": "html", ".json": "json", ".csv": "csv", ".txt": "table"}


def guess_format(path):
    """The format ``path``'s extension stands for, or None (an image's: ``png``)."""
    if not path or path == "-":
        return None
    extension = os.path.splitext(path)[1].lower()
    if extension in _BY_EXTENSION:
        return _BY_EXTENSION[extension]
    from mempulse._plot import FORMATS as IMAGES

    return "png" if extension[1:] in IMAGES else None


def check(fmt, target):
    """Raise ImportError (with the install hint) or ValueError if ``fmt`` cannot go to ``target``.

    Imports nothing big: this runs before the traced program.
    """
    if fmt not in FORMATS:
        raise ValueError("unknown format %r (use one of %s)" % (fmt, ", ".join(FORMATS)))
    if fmt == "html":
        from mempulse.reporters.html_report import check_jinja2

        check_jinja2()
    elif fmt == "png":
        if target is None or target == "-" or hasattr(target, "write"):
            raise ValueError("a picture needs a file name: -o FILE.png (or .svg, .pdf)")
        from mempulse._plot import check_plot_path

        check_plot_path(target)


def write(result, fmt, target, sort="order", min_increment=0, top=None):
    """Write ``result`` as ``fmt`` to ``target`` (a path, ``"-"`` for stdout, or a stream).

    ``sort``, ``min_increment`` and ``top`` shape the table's rows; ``top``
    is also the length of the HTML summary's top lists.  JSON, CSV and the
    picture get every line.  Raises what fails (the caller says it).
    """
    if fmt == "png":
        from mempulse._plot import plot

        plot(result, target)
        return
    if fmt == "table":
        from mempulse.reporters.table import render_table

        _write_text(target, render_table(result, sort, min_increment, top))
    elif fmt == "html":
        from mempulse.reporters.html_report import render_html

        _write_text(target, render_html(result, top=top or 10), encoding="utf-8")
    elif fmt == "json":
        from mempulse._export import dump_json

        _write_with(target, lambda fp: dump_json(result, fp))
    elif fmt == "csv":
        from mempulse._export import dump_csv

        _write_with(target, lambda fp: dump_csv(result, fp), csv=True)
    else:
        raise ValueError("unknown format %r" % (fmt,))


def _stream(target):
    if target == "-":
        return sys.stdout
    return target if hasattr(target, "write") else None


def _write_text(target, text, encoding=None):
    """Write ``text`` (native str, or unicode with ``encoding``) to ``target``."""
    stream = _stream(target)
    if stream is None:
        if encoding is None:
            with open(target, "w") as fp:
                fp.write(text)
        else:
            with io.open(target, "w", encoding=encoding) as fp:
                fp.write(text)
        return
    if encoding is not None and _PY2:
        text = text.encode(encoding)  # a Python 2 stream takes bytes
    elif encoding is not None and getattr(stream, "encoding", "utf-8").lower().replace("-", "") != "utf8":
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:  # an HTML page is UTF-8 whatever the locale says
            stream.flush()
            buffer.write(text.encode(encoding))
            buffer.flush()
            return
    stream.write(text)
    stream.flush()


def _write_with(target, write, csv=False):
    stream = _stream(target)
    if stream is not None:
        write(stream)
        stream.flush()
        return
    if _PY2:
        fp = open(target, "wb" if csv else "w")
    elif csv:
        fp = open(target, "w", newline="", encoding="utf-8")
    else:
        fp = open(target, "w")
    with fp:
        write(fp)
