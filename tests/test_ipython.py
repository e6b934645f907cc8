"""The IPython magics, run in IPython's own InteractiveShell on real megabytes."""
import os
import re
import subprocess
import sys

import pytest

from conftest import MiB, touched

IPython = pytest.importorskip("IPython")

from IPython.core.error import UsageError  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

# Callsite, Method Name, then USS, Swap, Peak RSS, Hits and the (net) increment.
ROW = re.compile(r"^(\S+):(\d+)\s+(\S+)\s+(?:\S+\s+){4}(\S+)")


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    # Module scope: the shell is made (and its files opened) before the
    # per-test check of open fds starts counting.
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    old_dir = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))
    try:
        ip = InteractiveShell.instance(config=config)
        ip.run_line_magic("colors", "nocolor")  # plain tracebacks to read
        result = ip.run_cell("%load_ext mempulse")
        assert result.success, result
        ip.user_ns["touched"] = touched
        ip.user_ns["MiB"] = MiB
        yield ip
    finally:
        if old_dir is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = old_dir


def rows(text):
    """(file, line, function, increment) for each row of the printed table."""
    lines = text.strip().split("\n")
    start = [i for i, line in enumerate(lines) if line.startswith("Callsite")]
    assert len(start) == 1, text
    found = []
    for line in lines[start[0] + 2:]:
        if not line.strip("-") or line.startswith("Peak RSS:"):
            break  # a traceback's rule, or the note on peaks, below the table
        match = ROW.match(line)
        assert match, line
        increment = 0 if match.group(4) == "0" else int(match.group(4).replace(",", ""))
        found.append((match.group(1), int(match.group(2)), match.group(3), increment))
    return found


def test_line_magic_prints_the_table_and_assigns(shell, capsys):
    shell.run_line_magic("mempulse", "blob = touched(32 * MiB)")
    table = rows(capsys.readouterr().out)
    assert len(table) == 1, table
    filename, lineno, function, increment = table[0]
    assert (lineno, function) == (1, "<module>")
    assert re.match(r"<mempulse-\d+>$", filename), filename  # the magic's code, not a file
    assert 31 * MiB < increment < 40 * MiB, table
    # The statement ran in the user namespace.
    assert len(shell.user_ns["blob"]) == 32 * MiB
    shell.user_ns.pop("blob").close()


def test_line_magic_returns_an_expression_value(shell, capsys):
    value = shell.run_line_magic("mempulse", "len(touched(8 * MiB))")
    assert value == 8 * MiB
    assert [r[1:3] for r in rows(capsys.readouterr().out)] == [(1, "<module>")]


def test_cell_magic_through_run_cell(shell, capsys):
    cell = "%%mempulse\nfirst = touched(16 * MiB)\nsecond = touched(24 * MiB)\ntotal = len(first) + len(second)\n"
    result = shell.run_cell(cell)
    assert result.success, result.error_in_exec
    table = rows(capsys.readouterr().out)
    assert [(r[1], r[2]) for r in table] == [(1, "<module>"), (2, "<module>"), (3, "<module>")]
    assert 15 * MiB < table[0][3] < 22 * MiB, table
    assert 23 * MiB < table[1][3] < 30 * MiB, table
    assert shell.user_ns["total"] == 40 * MiB
    for name in ("first", "second"):
        shell.user_ns.pop(name).close()


def test_depth_option_records_called_functions(shell, capsys):
    assert shell.run_cell("def grow(n):\n    data = touched(n)\n    return data\n").success
    capsys.readouterr()
    shell.run_cell_magic("mempulse", "", "kept = grow(8 * MiB)\n")
    assert [r[2] for r in rows(capsys.readouterr().out)] == ["<module>"]
    for option in ("-d 2", "-d2", "--depth 2", "--depth=2"):
        shell.run_cell_magic("mempulse", option, "kept = grow(8 * MiB)\n")
        table = rows(capsys.readouterr().out)
        assert [(r[1], r[2]) for r in table] == [(1, "<module>"), (2, "grow"), (3, "grow")], option
        assert table[1][3] > 7 * MiB, table
    shell.run_line_magic("mempulse", "-d 2 kept = grow(8 * MiB)")
    assert [r[2] for r in rows(capsys.readouterr().out)] == ["<module>", "grow", "grow"]
    shell.user_ns.pop("kept").close()


def test_exception_propagates_and_tracing_stops(shell, capsys):
    import mempulse

    with pytest.raises(ZeroDivisionError):
        shell.run_line_magic("mempulse", "ratio = 1 / 0")
    assert sys.gettrace() is None
    assert mempulse._tracer.current_tracer() is None
    # The table of what ran before the exception is still printed.
    assert [r[1:3] for r in rows(capsys.readouterr().out)] == [(1, "<module>")]
    # In a cell, IPython reports it as for any cell.
    result = shell.run_cell("%%mempulse\nok = 1\nraise KeyError('boom')\n")
    assert isinstance(result.error_in_exec, KeyError)
    assert shell.user_ns["ok"] == 1
    assert sys.gettrace() is None
    out = capsys.readouterr().out
    assert [r[1:3] for r in rows(out[:out.index("KeyError")])] == [(1, "<module>"), (2, "<module>")]
    # The traceback quotes the failing line of the magic's code.
    assert "raise KeyError('boom')" in out[out.index("KeyError"):], out


@pytest.mark.parametrize(
    "kind, line, cell, message",
    [
        ("line", "", None, "%mempulse needs a statement"),
        ("line", "-d x = 1", None, "-d needs a depth of 1 or more, got 'x'"),
        ("line", "-d 0 x = 1", None, "-d needs a depth of 1 or more, got '0'"),
        ("cell", "-d", "x = 1\n", "-d needs a depth of 1 or more"),
        ("cell", "x = 2", "x = 1\n", "%%mempulse takes only -d N on its line, got 'x = 2'"),
    ],
)
def test_bad_options_are_usage_errors(shell, kind, line, cell, message):
    shell.user_ns.pop("x", None)
    with pytest.raises(UsageError) as info:
        if kind == "line":
            shell.run_line_magic("mempulse", line)
        else:
            shell.run_cell_magic("mempulse", line, cell)
    assert message in str(info.value)
    assert "x" not in shell.user_ns  # nothing ran
    assert sys.gettrace() is None


def test_syntax_error_is_raised_before_tracing(shell):
    with pytest.raises(SyntaxError):
        shell.run_cell_magic("mempulse", "", "x = (\n")
    assert sys.gettrace() is None


def test_importing_mempulse_does_not_import_ipython(tmp_path):
    code = "import sys, mempulse; mempulse.load_ipython_extension; print('IPython' in sys.modules)"
    out = subprocess.check_output([sys.executable, "-c", code], cwd=str(tmp_path))
    assert out.strip() == b"False"
