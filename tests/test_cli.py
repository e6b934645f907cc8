"""The command line: python -m mempulse and the mempulse console script, run for real."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import HAVE_PSUTIL

import mempulse

BIN = os.path.dirname(sys.executable)
CONSOLE = os.path.join(BIN, "mempulse")
MiB = 1 << 20
PACKAGE = os.path.join(os.path.dirname(os.path.realpath(mempulse.__file__)), "")

RUNNERS = {
    "python-m": ([sys.executable, "-m", "mempulse"], "python -m mempulse"),
    "console": ([CONSOLE], "mempulse"),
}


@pytest.fixture(params=sorted(RUNNERS))
def runner(request):
    return request.param


def run(cwd, args, runner="python-m", stdin=None):
    """Run mempulse in ``cwd`` (never the repo root: it would import the source tree)."""
    command = RUNNERS[runner][0] + list(args)
    proc = subprocess.Popen(
        command,
        cwd=str(cwd),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(stdin)
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def write(directory, name, source):
    path = os.path.join(str(directory), name)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent)
    with open(path, "w") as f:
        f.write(textwrap.dedent(source).lstrip())
    return path


def line_in(path, marker):
    with open(path) as f:
        for number, text in enumerate(f, 1):
            if text.rstrip().endswith("# " + marker):
                return number
    raise LookupError(marker)


SHOW = """
import json, os, sys
print(json.dumps({"name": __name__, "argv": sys.argv, "path0": sys.path[0],
                  "file": __file__, "main": sys.modules["__main__"].__dict__ is globals()}))
"""

# Allocates real resident memory on a marked line: a fresh mapping, every page written.
GROW = """
import mmap, sys

# One 1 MiB chunk made up front: writing fresh bytes objects would leave
# garbage that PyPy's collector may free inside a measured line.
CHUNK = b"z" * (1 << 20)

def grow(mib):
    m = mmap.mmap(-1, mib << 20)
    for _ in range(mib):
        m.write(CHUNK)  # L:write
    return m

small = [1, 2, 3]  # L:small
big = grow(32)  # L:big
more = grow(8)  # L:more
big.close()  # L:free
if __name__ == "__main__":
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


def load(path):
    with open(path) as f:
        return mempulse.load_json(f)


def real(path, cwd):
    """``path`` as an absolute real path; relative ones (Python < 3.9 records
    the script as typed) are relative to where mempulse ran."""
    return os.path.realpath(os.path.join(str(cwd), path))


def at(result, path, lineno):
    cwd = os.path.dirname(path)  # the tests run scripts from their directory
    found = [r for r in result if r.lineno == lineno and real(r.filename, cwd) == os.path.realpath(path)]
    assert len(found) == 1, (lineno, result)
    return found[0]


def test_runs_the_script_as_main(tmpdir, runner):
    script = write(tmpdir, "sub/show.py", SHOW + 'if __name__ == "__main__":\n    print("main block")\n')
    # Arguments after the script are its own, even when they look like ours.
    status, out, err = run(tmpdir, ["sub/show.py", "a", "--depth", "5", "-o", "x"], runner)
    assert status == 0, err
    lines = out.splitlines()
    seen = json.loads(lines[0])
    assert seen["name"] == "__main__"
    assert seen["argv"] == ["sub/show.py", "a", "--depth", "5", "-o", "x"]
    assert seen["path0"] == os.path.dirname(os.path.realpath(script))
    assert real(seen["file"], tmpdir) == os.path.realpath(script)
    assert seen["main"] is True
    assert lines[1] == "main block"
    assert not os.path.exists(str(tmpdir.join("x")))
    # The table goes to stderr; the script's own lines are in it.
    assert "Callsite" in err and "sub/show.py:1 " in err


def test_double_dash_and_option_forms(tmpdir):
    write(tmpdir, "show.py", SHOW)
    status, out, err = run(tmpdir, ["--depth=1", "--sort=peak", "-o-", "--", "show.py", "-x"])
    assert status == 0, err
    assert json.loads(out.splitlines()[0])["argv"] == ["show.py", "-x"]
    assert "Callsite" in out  # -o- : the table on stdout


def test_objects_of_the_script_pickle_as_in_main(tmpdir):
    write(
        tmpdir,
        "p.py",
        """
        import pickle
        class Point(object):
            def __init__(self, x):
                self.x = x
        copy = pickle.loads(pickle.dumps(Point(3)))
        print("%s %s" % (type(copy).__module__, copy.x))
        """,
    )
    status, out, err = run(tmpdir, ["p.py"])
    assert status == 0, err
    assert out.split() == ["__main__", "3"]


@pytest.mark.parametrize(
    "ending, expected_status, expected_err",
    [
        ("x = 0", 0, None),
        ("sys.exit()", 0, None),
        ("sys.exit(0)", 0, None),
        ("sys.exit(3)", 3, None),
        ("sys.exit('no input given')", 1, "no input given"),
        ("raise SystemExit(7)", 7, None),
    ],
)
def test_exit_status_is_the_scripts_and_the_report_is_written(
    tmpdir, runner, ending, expected_status, expected_err
):
    write(tmpdir, "end.py", "import sys\nprint('ran')\n" + ending + "\nprint('not reached')\n")
    status, out, err = run(tmpdir, ["end.py"], runner)
    assert status == expected_status, err
    assert out.splitlines()[0] == "ran"
    assert "Callsite" in err and "end.py:3 " in err
    if expected_err is not None:
        assert err.splitlines()[0] == expected_err
    assert "Traceback" not in err


def test_uncaught_exception_shows_a_normal_traceback_and_exits_1(tmpdir, runner):
    script = write(
        tmpdir,
        "boom.py",
        """
        def fail():
            raise ValueError("boom")  # L:raise
        fail()  # L:call
        """,
    )
    status, out, err = run(tmpdir, ["boom.py"], runner)
    assert status == 1
    lines = err.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    # As Python shows it: the script's frames only, no mempulse or runpy.
    frames = [l.strip() for l in lines if l.strip().startswith("File ")]
    assert len(frames) == 2, err
    assert frames[0].endswith('boom.py", line %d, in <module>' % line_in(script, "L:call"))
    assert frames[1].endswith('boom.py", line %d, in fail' % line_in(script, "L:raise"))
    assert "ValueError: boom" in lines
    assert "mempulse" not in "\n".join(lines[: lines.index("ValueError: boom")])
    # The report follows, with the line that raised.
    assert "boom.py:%d " % line_in(script, "L:call") in err


def test_syntax_error_is_reported_like_python(tmpdir):
    write(tmpdir, "bad.py", "x = (\n")
    status, out, err = run(tmpdir, ["bad.py"])
    assert status == 1
    assert "SyntaxError" in err and "bad.py" in err
    assert "Callsite" not in err  # nothing ran, nothing traced


def test_megabytes_show_on_the_line_that_allocated_them(tmpdir, runner):
    script = write(tmpdir, "grow.py", GROW)
    status, out, err = run(tmpdir, ["--json", "out.json", "grow.py"], runner)
    assert status == 0, err
    result = load(str(tmpdir.join("out.json")))
    big = at(result, script, line_in(script, "L:big"))
    more = at(result, script, line_in(script, "L:more"))
    free = at(result, script, line_in(script, "L:free"))
    small = at(result, script, line_in(script, "L:small"))
    assert 28 * MiB <= big.increment <= 40 * MiB
    assert 6 * MiB <= more.increment <= 12 * MiB
    assert -40 * MiB <= free.increment <= -28 * MiB
    assert abs(small.increment) < 2 * MiB
    # The table shows the same figure on the same line.
    row = [l for l in err.splitlines() if l.startswith("grow.py:%d " % big.lineno)]
    assert len(row) == 1 and row[0].split()[6] == "+{:,}".format(big.increment)  # Increment (net)


def test_depth_counts_from_the_scripts_module_level(tmpdir):
    script = write(tmpdir, "grow.py", GROW)
    write_line = line_in(script, "L:write")
    for depth, expect_callee in ((1, False), (2, True)):
        status, out, err = run(tmpdir, ["--depth", str(depth), "--json", "d.json", "grow.py"])
        assert status == 0, err
        result = load(str(tmpdir.join("d.json")))
        assert result.metadata["depth"] == depth
        files = set(real(r.filename, tmpdir) for r in result)
        # mempulse's own frames are transparent: the script is level 1.
        assert os.path.realpath(script) in files
        assert not [f for f in files if f.startswith(PACKAGE) or f.endswith("runpy.py")]
        if depth == 1:
            assert files == set([os.path.realpath(script)])
        module_lines = [r for r in result if r.function == "<module>"]
        assert len(module_lines) >= 6
        callee = [r for r in result if r.lineno == write_line]
        assert len(callee) == (1 if expect_callee else 0)
        if expect_callee:
            assert callee[0].hits == 40 and callee[0].increment >= 32 * MiB


def make_package(tmpdir):
    write(tmpdir, "pkg/__init__.py", "")
    write(tmpdir, "pkg/__main__.py", SHOW + "import sys\nsys.exit(4)\n")
    write(tmpdir, "pkg/tool.py", SHOW + GROW.replace("import mmap, sys", "import mmap"))


def test_dash_m_runs_a_module_as_python_m_does(tmpdir, runner):
    make_package(tmpdir)
    tool = str(tmpdir.join("pkg", "tool.py"))
    status, out, err = run(tmpdir, ["--json", "m.json", "-m", "pkg.tool", "9", "--sort", "x"], runner)
    seen = json.loads(out.splitlines()[0])
    assert status == 9, err
    assert seen["name"] == "__main__" and seen["main"] is True
    assert seen["argv"] == [tool, "9", "--sort", "x"]
    assert real(seen["file"], tmpdir) == os.path.realpath(tool)
    assert seen["path0"] in ("", os.path.realpath(str(tmpdir)), str(tmpdir))
    result = load(str(tmpdir.join("m.json")))
    # Level 1 is the module itself: no runpy or importlib frames in between.
    assert set(real(r.filename, tmpdir) for r in result) == set([os.path.realpath(tool)])
    assert at(result, tool, line_in(tool, "L:big")).increment >= 28 * MiB
    assert result.metadata["command"] == [tool, "9", "--sort", "x"]


def test_dash_m_on_a_package_runs_its_main(tmpdir, runner):
    make_package(tmpdir)
    status, out, err = run(tmpdir, ["-mpkg"], runner)
    assert status == 4, err
    seen = json.loads(out.splitlines()[0])
    assert seen["name"] == "__main__"
    assert os.path.basename(seen["argv"][0]) == "__main__.py"
    assert "__main__.py:1 " in err


def test_dash_m_on_a_stdlib_module(tmpdir):
    status, out, err = run(tmpdir, ["-m", "json.tool"], stdin=b'{"b": [1, 2]}')
    assert status == 0, err
    assert json.loads(out) == {"b": [1, 2]}
    assert "Callsite" in err and "tool.py" in err


@pytest.mark.parametrize(
    "sampler",
    [
        "c",
        pytest.param("psutil", marks=pytest.mark.skipif(not HAVE_PSUTIL, reason="psutil is not installed")),
    ],
)
def test_sampler_option(tmpdir, sampler):
    script = write(tmpdir, "grow.py", GROW)
    status, out, err = run(tmpdir, ["--sampler", sampler, "--json", "s.json", "grow.py"])
    assert status == 0, err
    result = load(str(tmpdir.join("s.json")))
    assert result.metadata["sampler"] == sampler
    assert at(result, script, line_in(script, "L:big")).increment >= 28 * MiB


def test_default_sampler_is_c_on_linux(tmpdir):
    write(tmpdir, "s.py", "x = 1\n")
    status, out, err = run(tmpdir, ["--json", "s.json", "s.py"])
    assert status == 0, err
    assert load(str(tmpdir.join("s.json"))).metadata["sampler"] == "c"


def table_lines(text):
    rows = text.splitlines()
    assert rows[0].startswith("Callsite") and set(rows[1]) == set("-")
    assert rows[-1].startswith("Peak RSS: ")  # what the peaks are
    return rows[2:-1]


def test_sort_and_min_increment_shape_the_table(tmpdir):
    script = write(tmpdir, "grow.py", GROW)
    big, more, free = (line_in(script, m) for m in ("L:big", "L:more", "L:free"))

    status, out, err = run(tmpdir, ["--sort", "increment", "grow.py"])
    assert status == 0, err
    rows = table_lines(err)
    assert rows[0].startswith("grow.py:%d " % big)
    assert rows[1].startswith("grow.py:%d " % more)
    assert rows[-1].startswith("grow.py:%d " % free)  # the release: most negative, last

    status, out, err = run(tmpdir, ["--sort", "peak", "grow.py"])
    rows = table_lines(err)
    peaks = [int(r.split()[4].replace(",", "")) for r in rows]
    assert peaks == sorted(peaks, reverse=True)

    status, out, err = run(tmpdir, ["--sort", "order", "grow.py"])
    numbers = [int(r.split()[0].split(":")[1]) for r in table_lines(err)]
    assert numbers == sorted(numbers)

    # |increment| >= 6 MiB: the two allocations and the release, in order.
    status, out, err = run(tmpdir, ["--min-increment", "6MiB", "--json", "all.json", "grow.py"])
    assert status == 0, err
    numbers = [int(r.split()[0].split(":")[1]) for r in table_lines(err)]
    assert numbers == [big, more, free]
    # The files get every line regardless.
    assert len(load(str(tmpdir.join("all.json")))) > 3


def test_output_options_write_files(tmpdir, monkeypatch):
    script = write(tmpdir, "grow.py", GROW)
    args = ["-o", "table.txt", "--json", "r.json", "--csv", "r.csv", "grow.py", "0"]
    status, out, err = run(tmpdir, args)
    assert status == 0, err
    assert err == ""  # the table went to the file
    with open(str(tmpdir.join("table.txt"))) as f:
        table = f.read()
    assert "grow.py:%d " % line_in(script, "L:big") in table
    # The JSON file, loaded, prints the very same table (paths are shown
    # relative to the current directory, so format it from the same one).
    result = load(str(tmpdir.join("r.json")))
    monkeypatch.chdir(tmpdir)
    assert mempulse.format_trace_result(result) == table
    import csv

    with open(str(tmpdir.join("r.csv"))) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result)
    assert [int(r["lineno"]) for r in rows] == [r.lineno for r in result]
    assert rows[0]["sampler"] == "c" and rows[0]["depth"] == "1"
    # '-' is stdout.
    status, out, err = run(tmpdir, ["-o", "-", "grow.py"])
    assert status == 0 and "Callsite" in out and "Callsite" not in err


def test_files_are_written_where_the_command_ran_even_if_the_script_chdirs(tmpdir):
    write(tmpdir, "cd.py", "import os\nos.chdir('..')\n")
    status, out, err = run(tmpdir, ["--json", "r.json", "cd.py"])
    assert status == 0, err
    assert tmpdir.join("r.json").check()


def test_plot_option(tmpdir, runner):
    pytest.importorskip("matplotlib")
    write(tmpdir, "grow.py", GROW)
    status, out, err = run(tmpdir, ["--plot", "p.png", "grow.py"], runner)
    assert status == 0, err
    with open(str(tmpdir.join("p.png")), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(sys.version_info[0] < 3, reason="blocks matplotlib through importlib.util.find_spec (Python 3)")
def test_plot_without_matplotlib_is_a_usage_error(tmpdir):
    write(tmpdir, "ran.py", "open('ran', 'w').close()\n")
    # A real interpreter in which matplotlib cannot be imported (None in
    # sys.modules makes both import and find_spec say it is not there).
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from mempulse._cli import main\n"
        "sys.exit(main(['--plot', 'p.png', 'ran.py']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=str(tmpdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate()
    assert proc.returncode == 2
    assert err.decode().splitlines() == [
        "mempulse: error: mempulse.plot needs matplotlib, which is not installed: pip install matplotlib"
    ]
    assert not tmpdir.join("ran").check()


BAD = [
    (["--depth", "0", "ran.py"], "argument --depth: must be a positive integer"),
    (["--depth", "two", "ran.py"], "argument --depth"),
    (["--sampler", "rss", "ran.py"], "argument --sampler: invalid choice"),
    (["--sort", "size", "ran.py"], "argument --sort: invalid choice"),
    (["--min-increment", "10X", "ran.py"], "cannot read '10X' as a size"),
    (["--min-increment", "-1M", "ran.py"], "argument --min-increment"),
    (["--min-increment=-1M", "ran.py"], "cannot read '-1M' as a size"),
    (["--bogus", "ran.py"], "unrecognized arguments: --bogus"),
    (["--depth"], "argument --depth: expected one argument"),
    (["missing.py"], "cannot run 'missing.py'"),
    (["-m", "no_such_module_here"], "No module named"),
    (["-m"], "argument -m: expected a module name"),
    ([], "no script given"),
    (["-o", "no/such/dir/t.txt", "ran.py"], "no such directory"),
    (["--json", "no/such/dir/r.json", "ran.py"], "no such directory"),
    (["emptydir"], "can't find '__main__' module in"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) or "nothing" for a, _ in BAD])
def test_bad_input_is_one_line_and_status_2(tmpdir, runner, args, message):
    write(tmpdir, "ran.py", "open('ran', 'w').close()\n")
    tmpdir.mkdir("emptydir")
    status, out, err = run(tmpdir, args, runner)
    assert status == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(RUNNERS[runner][1] + ": error: ")
    assert message in lines[0]
    assert out == ""
    assert not tmpdir.join("ran").check()  # nothing ran


def test_unknown_plot_extension_is_a_usage_error(tmpdir, runner):
    pytest.importorskip("matplotlib")  # without it, the error is that it is missing
    write(tmpdir, "ran.py", "open('ran', 'w').close()\n")
    status, out, err = run(tmpdir, ["--plot", "p.bmpx", "ran.py"], runner)
    assert status == 2
    assert err.splitlines() == [RUNNERS[runner][1] + ": error: " + err.splitlines()[0].split(": error: ", 1)[1]]
    assert "p.bmpx" in err and out == ""
    assert not tmpdir.join("ran").check()


def test_dash_m_on_a_package_without_main_is_a_usage_error(tmpdir, runner):
    write(tmpdir, "plain/__init__.py", "open('ran', 'w').close()\n")
    status, out, err = run(tmpdir, ["-m", "plain"], runner)
    assert status == 2
    assert err.splitlines() == [
        RUNNERS[runner][1] + ": error: cannot run module 'plain': No module named plain.__main__; "
        "'plain' is a package and cannot be directly executed"
    ]
    # Like python -m, the package itself was imported to look for __main__.
    assert tmpdir.join("ran").check()


@pytest.mark.skipif(HAVE_PSUTIL, reason="checks the message shown when psutil is missing")
def test_psutil_sampler_without_psutil_is_a_usage_error(tmpdir):
    write(tmpdir, "ran.py", "open('ran', 'w').close()\n")
    status, out, err = run(tmpdir, ["--sampler", "psutil", "ran.py"])
    assert status == 2 and "pip install psutil" in err
    assert not tmpdir.join("ran").check()


def test_help_explains_every_option_with_an_example(tmpdir, runner):
    status, out, err = run(tmpdir, ["--help"], runner)
    assert status == 0 and err == ""
    assert out.startswith("usage: " + RUNNERS[runner][1])
    out = " ".join(out.split())  # argparse wraps lines at the terminal's width
    for option in ("--depth", "--sampler", "--sort", "--min-increment", "--json", "--csv", "--plot", "-o", "-m"):
        assert option in out
    for example in ("--depth 3", "--sampler psutil", "--sort increment", "--min-increment 512K",
                    "--json run.json", "--csv run.csv", "--plot memory.png", "-o report.txt", "-m json.tool"):
        assert example in out, example
    assert "1024" in out and "1000" in out  # what K and KB mean


def test_version(tmpdir, runner):
    status, out, err = run(tmpdir, ["--version"], runner)
    assert (status, out, err) == (0, "mempulse %s\n" % mempulse.__version__, "")


APP_MAIN = SHOW.lstrip().replace("import json, os, sys", "import json, os, sys\nimport helper") + (
    "print(json.dumps({'helper': helper.__file__, 'spec': getattr(globals().get('__spec__'), 'name', None),"
    " 'package': __package__}))\n"
    "kept = helper.grow(24)  # L:app-grow\n"
)
APP_HELPER = "import mmap\n\ndef grow(mib):\n    m = mmap.mmap(-1, mib << 20)\n    m.write(b'x' * (mib << 20))\n    return m\n"


def make_app(tmpdir):
    """appdir/ (a directory with __main__.py) and app.pyz (the same as a zip file)."""
    import zipfile

    write(tmpdir, "appdir/__main__.py", APP_MAIN)
    write(tmpdir, "appdir/helper.py", APP_HELPER)
    with zipfile.ZipFile(str(tmpdir.join("app.pyz")), "w") as z:
        z.writestr("__main__.py", APP_MAIN)
        z.writestr("helper.py", APP_HELPER)


def run_python(cwd, args):
    proc = subprocess.Popen([sys.executable] + list(args), cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


@pytest.mark.parametrize("target", ["appdir", "./appdir/", "app.pyz"])
def test_directories_and_zipapps_run_as_python_runs_them(tmpdir, runner, target):
    make_app(tmpdir)
    expected = run_python(tmpdir, [target, "x", "--depth", "3"])
    assert expected[0] == 0, expected
    status, out, err = run(tmpdir, ["--json", "app.json", target, "x", "--depth", "3"], runner)
    assert status == 0, err
    # What the program sees is what it sees under python: argv, sys.path[0]
    # (helper.py imports from there), __file__, __spec__, __package__.
    assert out == expected[1]
    result = load(str(tmpdir.join("app.json")))
    main_file = json.loads(out.splitlines()[0])["file"]
    # Level 1 is __main__.py's module level: helper.grow's lines are level 2.
    assert set(r.filename for r in result) == set([main_file])
    assert all(r.function == "<module>" for r in result)
    grow = [r for r in result if r.lineno == line_in(str(tmpdir.join("appdir", "__main__.py")), "L:app-grow")]
    assert len(grow) == 1 and grow[0].increment >= 20 * MiB
    assert "__main__.py:1 " in err
    assert result.metadata["command"] == [target, "x", "--depth", "3"]


def test_a_directory_with_a_broken_main_is_the_programs_error(tmpdir):
    write(tmpdir, "bad/__main__.py", "x = (\n")
    expected = run_python(tmpdir, ["bad"])
    status, out, err = run(tmpdir, ["bad"])
    assert status == expected[0] == 1
    assert "SyntaxError" in err and "Callsite" not in err


# A script name that is not UTF-8 (latin-1 "cafe" with an e acute): Python 3 sees it as a
# str with a lone surrogate, Python 2 as bytes.
ODD_NAME = b"caf\xe9.py"


def test_a_script_whose_name_is_not_utf8(tmpdir, runner):
    path = os.path.join(str(tmpdir).encode("ascii"), ODD_NAME)
    with open(path, "wb") as f:
        f.write(b"import sys\nblob = b'x' * int('16777216')  # made at run time\nsys.exit(0)\n")
    command = [c.encode("ascii") if not isinstance(c, bytes) else c for c in RUNNERS[runner][0]]
    command += [b"--json", b"odd.json", b"--csv", b"odd.csv", ODD_NAME]
    proc = subprocess.Popen(command, cwd=str(tmpdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    err = err.decode("utf-8")
    assert "Traceback" not in err and "error" not in err
    # The table and the CSV write the byte that is not UTF-8 as \xe9.
    assert "caf\\xe9.py:2 " in err
    import csv

    with io_open(str(tmpdir.join("odd.csv"))) as f:
        rows = list(csv.DictReader(f))
    assert [os.path.basename(r["filename"]) for r in rows] == ["caf\\xe9.py"] * 3
    # The JSON gives the very name back, as the interpreter names the file.
    result = load(str(tmpdir.join("odd.json")))
    names = set(os.path.basename(r.filename) for r in result)
    assert names == set([ODD_NAME if sys.version_info[0] == 2 else ODD_NAME.decode("utf-8", "surrogateescape")])
    assert [r for r in result if r.lineno == 2][0].increment >= 12 * MiB


def io_open(path):
    import io

    return io.open(path, encoding="utf-8", newline="")


# A private mount namespace (root only) with an empty /proc: the C sampler
# cannot open its files and psutil finds no process.
NO_PROC = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /proc && exec "$@"', "sh"]


def can_hide_proc():
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open(os.devnull, "w") as devnull:
            return subprocess.call(NO_PROC + ["true"], stdout=devnull, stderr=devnull) == 0
    except OSError:
        return False


@pytest.mark.skipif(not can_hide_proc(), reason="needs root and unshare to hide /proc")
@pytest.mark.parametrize("sampler", [[], ["--sampler", "psutil"], ["--sampler", "c"]], ids=["default", "psutil", "c"])
def test_without_proc_the_run_does_not_start(tmpdir, sampler):
    if sampler != ["--sampler", "c"]:
        pytest.importorskip("psutil")
    write(tmpdir, "ran.py", "open('ran', 'w').close()\n")
    proc = subprocess.Popen(
        NO_PROC + [sys.executable, "-m", "mempulse"] + sampler + ["ran.py"],
        cwd=str(tmpdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = proc.communicate()
    # Less what the interpreter itself says there (PyPy misses /proc/cpuinfo),
    # and what psutil's own import prints there (old psutil: a traceback).
    quiet = "pass" if sampler == ["--sampler", "c"] else "import psutil"
    plain = subprocess.Popen(NO_PROC + [sys.executable, "-c", quiet], stderr=subprocess.PIPE)
    own = set(plain.communicate()[1].decode("utf-8", "replace").splitlines())
    lines = [line for line in err.decode("utf-8", "replace").splitlines() if line not in own]
    assert proc.returncode == 2, lines
    assert len(lines) == 1 and lines[0].startswith("python -m mempulse: error: "), lines
    assert not tmpdir.join("ran").check()  # nothing ran
