"""The annotated-source HTML report: one self-contained page (inline CSS, JS, SVG).

:func:`render_html` gathers what the page shows (:func:`page_context`) and
fills ``templates/report.html`` with Jinja2 (``pip install mempulse[html]``),
autoescaping on: file names, function names and source text are data, never
markup.  Source files are read when the report is rendered, from where the
run recorded them; a file that is gone is listed by its lines only.
"""
import io
import os
import sys

from mempulse import _text
from mempulse.reporters import _figures
from mempulse.reporters.timeline import timeline_svg

_PY2 = sys.version_info[0] == 2
_UNICODE = type(u"")
HINT = "the html format needs Jinja2, which is not installed: pip install mempulse[html]"
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def check_jinja2():
    """Raise ImportError with the install hint if Jinja2 is not installed (without importing it)."""
    try:
        from importlib.util import find_spec
    except ImportError:  # Python 2
        from pkgutil import find_loader as find_spec
    if find_spec("jinja2") is None:
        raise ImportError(HINT)


def _environment():
    from mempulse._optional import import_optional

    jinja2 = import_optional("jinja2", HINT)
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(result, top=10):
    """The HTML page of ``result`` as unicode; ``top``: length of the summary's top lists::

        with io.open("report.html", "w", encoding="utf-8") as fp:
            fp.write(render_html(result))
    """
    template = _environment().get_template("report.html")
    return template.render(**page_context(result, top))


def _u(text):
    """A name as unicode that encodes to UTF-8 (undecodable bytes as ``\\xNN``)."""
    text = _text.display(text)
    return text.decode("utf-8") if isinstance(text, bytes) else text


def short_name(filename):
    """``filename`` relative to the current directory when below it, as the table shows it."""
    cwd = os.path.join(os.getcwd(), "")
    if isinstance(filename, bytes) and not isinstance(cwd, bytes):
        cwd = cwd.encode("utf-8")
    if os.path.isabs(filename) and filename.startswith(cwd) and len(filename) > len(cwd):
        filename = filename[len(cwd):]
    return _u(filename)


def read_source(filename):
    """The lines of ``filename`` as unicode (its coding declaration honoured), or None."""
    try:
        with open(filename, "rb") as f:
            data = f.read()
    except (IOError, OSError, TypeError, ValueError):
        return None
    encoding = "utf-8"
    if not _PY2:
        import tokenize

        try:
            encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
        except SyntaxError:
            pass
    text = data.decode(encoding, "replace")
    if text.startswith(u"\ufeff"):
        text = text[1:]
    return text.splitlines()


class Line(object):
    """The figures of one source line (records of the same file and line merged)."""

    def __init__(self, record):
        self.filename, self.lineno = record.filename, record.lineno
        self.functions = [_u(record.function)]
        self.uss, self.swap, self.peak = record.uss, record.swap, record.peak_rss
        self.hits, self.increment = record.hits or 0, record.increment
        self.max_increment = getattr(record, "max_increment", None)

    def merge(self, record):
        function = _u(record.function)
        if function not in self.functions:
            self.functions.append(function)
        self.uss = record.uss if record.uss is not None else self.uss
        self.hits += record.hits or 0
        self.increment = _figures.add(self.increment, record.increment)
        self.peak = _figures.highest(self.peak, record.peak_rss)
        self.max_increment = _figures.highest(self.max_increment, getattr(record, "max_increment", None))

    @property
    def function(self):
        return u", ".join(self.functions)


def _lines_by_file(result):
    """``[(filename, {lineno: Line})]`` in order of first execution."""
    files, order = {}, []
    for record in result:
        lines = files.get(record.filename)
        if lines is None:
            lines = files[record.filename] = {}
            order.append(record.filename)
        line = lines.get(record.lineno)
        if line is None:
            lines[record.lineno] = Line(record)
        else:
            line.merge(record)
    return [(name, files[name]) for name in order]


def _cells(line, anchors):
    """The figures of ``line`` as template cells (text, exact value, sort key)."""
    return {
        "anchor": anchors[(line.filename, line.lineno)],
        "file": short_name(line.filename),
        "lineno": line.lineno,
        "function": line.function,
        "uss": _figures.cell(line.uss),
        "increment": _figures.cell(line.increment, signed=True),
        "max_increment": _figures.cell(line.max_increment, signed=True),
        "peak": _figures.cell(line.peak),
        "hits": _figures.cell(line.hits, size=False),
    }


def _totals(groups, anchors):
    """Rows of per-function or per-file totals: ``groups`` is ``[(label, file, [Line])]``."""
    rows = []
    for label, filename, lines in groups:
        first = min(lines, key=lambda line: line.lineno)
        increment = None
        for line in lines:
            increment = _figures.add(increment, line.increment)
        rows.append({
            "anchor": anchors[(first.filename, first.lineno)],
            "label": label,
            "file": short_name(filename),
            "lines": _figures.cell(len(lines), size=False),
            "hits": _figures.cell(sum(line.hits for line in lines), size=False),
            "increment": _figures.cell(increment, signed=True),
            "max_increment": _figures.cell(_figures.highest_of(line.max_increment for line in lines), signed=True),
            "peak": _figures.cell(_figures.highest_of(line.peak for line in lines)),
        })
    return rows


def _source_rows(lines, source, scale):
    """Every line of a file (only the recorded ones without its source), annotated."""
    numbers = range(1, len(source) + 1) if source is not None else sorted(lines)
    rows = []
    for number in numbers:
        line = lines.get(number)
        text = source[number - 1] if source is not None and number <= len(source) else None
        row = {"lineno": number, "text": text, "line": line}
        if line is not None:
            row["heat"] = _figures.heat(line.increment, scale)
        rows.append(row)
    # Recorded lines past the end of the file as it is now (it changed since the run).
    if source is not None:
        rows.extend({"lineno": n, "text": None, "line": lines[n], "heat": _figures.heat(lines[n].increment, scale)}
                    for n in sorted(lines) if n > len(source))
    return rows


def page_context(result, top=10):
    """Everything the template shows, as plain values (see templates/report.html)."""
    metadata = getattr(result, "metadata", None) or {}
    by_file = _lines_by_file(result)
    anchors, all_lines = {}, []
    for index, (filename, lines) in enumerate(by_file):
        for number, line in lines.items():
            anchors[(filename, number)] = "L%d-%d" % (index + 1, number)
            all_lines.append(line)
    scale = max([abs(line.increment or 0) for line in all_lines] + [1])

    by_increment = sorted(all_lines, key=lambda line: (-(line.increment or 0), line.lineno))
    by_peak = sorted(all_lines, key=lambda line: (-(line.peak if line.peak is not None else -1), line.lineno))
    functions, function_order = {}, []
    for line in all_lines:
        for function in line.functions:
            key = (line.filename, function)
            if key not in functions:
                functions[key] = []
                function_order.append(key)
            functions[key].append(line)
    files = []
    for index, (filename, lines) in enumerate(by_file):
        source = read_source(filename)
        files.append({
            "id": "file-%d" % (index + 1),
            "index": index + 1,
            "name": short_name(filename),
            "full_name": _u(filename),
            "has_source": source is not None,
            "rows": _source_rows(lines, source, scale),
            "anchors": dict((n, anchors[(filename, n)]) for n in lines),
            "executed": len(lines),
        })
    lifetime = metadata.get("peak", "lifetime") == "lifetime"
    marked = [line for line in by_increment[:5] if (line.increment or 0) > 0]
    return {
        "title": _title(metadata),
        "metadata": _metadata_rows(metadata, result, by_file),
        "lifetime_peak": lifetime,
        "have_max_increment": any(line.max_increment is not None for line in all_lines),
        "top": top,
        "top_increment": [_cells(line, anchors) for line in by_increment[:top]],
        "top_peak": [_cells(line, anchors) for line in by_peak[:top]],
        "functions": _totals([(f, name, functions[(name, f)]) for name, f in function_order], anchors),
        "files_totals": _totals([(short_name(name), name, list(lines.values())) for name, lines in by_file],
                                anchors),
        "files": files,
        "timeline": timeline_svg(getattr(result, "series", None) or [], [
            {"filename": line.filename, "lineno": line.lineno, "anchor": anchors[(line.filename, line.lineno)],
             "label": u"%s:%d" % (short_name(line.filename), line.lineno)} for line in marked
        ]),
        "marked": [_cells(line, anchors) for line in marked],
        "fmt": _figures.human,
    }


def _title(metadata):
    command = metadata.get("command")
    if command:
        return u"mempulse " + u" ".join(_u(c) for c in command)
    return u"mempulse report"


def _metadata_rows(metadata, result, by_file):
    """``[(label, value)]`` of the run, in reading order; unknown values left out."""
    command = metadata.get("command")
    peak = metadata.get("peak")
    rows = [
        (u"Command", u" ".join(_u(c) for c in command) if command else None),
        (u"Interpreter", metadata.get("interpreter")),
        (u"Platform", metadata.get("platform")),
        (u"Driver", metadata.get("driver")),
        (u"Sampler", metadata.get("sampler")),
        (u"Depth", metadata.get("depth")),
        (u"Peak mode", {"line": u"line: the highest RSS while the line ran",
                        "lifetime": u"lifetime: the process's high-water mark by the line's end"}.get(peak, peak)),
        (u"Started", metadata.get("start_time")),
        (u"Duration", u"%.3f s" % metadata["duration"] if isinstance(metadata.get("duration"), float) else None),
        (u"Lines recorded", u"%d in %d file%s" % (len(result), len(by_file), u"" if len(by_file) == 1 else u"s")),
    ]
    return [(label, _u(value) if isinstance(value, (bytes, _UNICODE)) else value)
            for label, value in rows if value is not None]
