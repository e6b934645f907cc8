"""mempulse run (trace and save) and mempulse report (render a saved result), run for real."""
import json
import os
import re
import struct
import subprocess
import sys

import pytest
from test_cli import GROW, RUNNERS, at, line_in, load, run, runner, write  # noqa: F401 - runner is a fixture

import mempulse

MiB = 1 << 20

try:
    import matplotlib  # noqa: F401

    HAVE_MATPLOTLIB = True
except ImportError:
    HAVE_MATPLOTLIB = False
try:
    import jinja2  # noqa: F401

    HAVE_JINJA2 = True
except ImportError:
    HAVE_JINJA2 = False

needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib is not installed")
needs_jinja2 = pytest.mark.skipif(not HAVE_JINJA2, reason="jinja2 is not installed (pip install mempulse[html])")

SAVED = re.compile(r"^(python -m mempulse|mempulse) run: result saved to (\S+) \(render it: mempulse report \2 --format html\)$")


def saved_line(err):
    """The one 'result saved to' line of ``err``, and the file it names."""
    lines = [l for l in err.splitlines() if "result saved to" in l]
    assert len(lines) == 1, err
    match = SAVED.match(lines[0])
    assert match, lines[0]
    return match.group(2)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture
def saved(tmpdir):
    """A real run of GROW saved to run.json: (tmpdir, script path, result)."""
    script = write(tmpdir, "grow.py", GROW)
    status, out, err = run(tmpdir, ["run", "-q", "-o", "run.json", "grow.py"])
    assert status == 0, err
    return tmpdir, script, load(str(tmpdir.join("run.json")))


def test_run_saves_the_result_under_a_default_name(tmpdir, runner):
    script = write(tmpdir, "grow.py", GROW)
    status, out, err = run(tmpdir, ["run", "grow.py", "3"], runner)
    assert status == 3  # the program's own status, as always
    name = saved_line(err)
    assert re.match(r"^mempulse-grow-\d+\.json$", name), name
    assert "Callsite" in err  # the table still goes to stderr
    assert err.splitlines()[-1].endswith("--format html)")  # the saved line comes last
    result = load(str(tmpdir.join(name)))
    assert at(result, script, line_in(script, "L:big")).increment >= 28 * MiB
    assert result.metadata["command"] == ["grow.py", "3"]
    assert sorted(os.listdir(str(tmpdir))) == sorted(["grow.py", name])


def test_the_shorthand_saves_nothing_it_was_not_asked_for(tmpdir, runner):
    write(tmpdir, "grow.py", GROW)
    status, out, err = run(tmpdir, ["grow.py"], runner)
    assert status == 0, err
    assert "result saved" not in err and "Callsite" in err
    assert os.listdir(str(tmpdir)) == ["grow.py"]


def test_run_writes_every_view_at_once(tmpdir):
    script = write(tmpdir, "grow.py", GROW)
    args = ["run", "-o", "r.json", "--table", "t.txt", "--json", "j.json", "--csv", "c.csv", "grow.py"]
    if HAVE_JINJA2:
        args[1:1] = ["--html", "r.html"]
    if HAVE_MATPLOTLIB:
        args[1:1] = ["--plot", "p.png"]
    status, out, err = run(tmpdir, args)
    assert status == 0, err
    assert saved_line(err) == "r.json" and len(err.splitlines()) == 1  # the table went to t.txt
    result = load(str(tmpdir.join("r.json")))
    assert load(str(tmpdir.join("j.json"))) == result
    with open(str(tmpdir.join("t.txt"))) as f:
        assert "grow.py:%d " % line_in(script, "L:big") in f.read()
    with open(str(tmpdir.join("c.csv"))) as f:
        assert len(f.read().splitlines()) == len(result) + 1
    if HAVE_JINJA2:
        with open(str(tmpdir.join("r.html")), "rb") as f:
            assert b"big = grow(32)  # L:big" in f.read()
    if HAVE_MATPLOTLIB:
        assert png_size(str(tmpdir.join("p.png")))[0] == 1200


def test_quiet_run_prints_only_where_it_saved(tmpdir):
    write(tmpdir, "grow.py", GROW)
    status, out, err = run(tmpdir, ["run", "-q", "--output=q.json", "grow.py"])
    assert status == 0
    assert len(err.splitlines()) == 1 and saved_line(err) == "q.json"
    assert tmpdir.join("q.json").check()


def test_run_of_a_module_names_the_file_after_it(tmpdir):
    write(tmpdir, "pkg/__init__.py", "")
    write(tmpdir, "pkg/tool.py", GROW)
    status, out, err = run(tmpdir, ["run", "-q", "-m", "pkg.tool"])
    assert status == 0, err
    assert re.match(r"^mempulse-pkg\.tool-\d+\.json$", saved_line(err))


@pytest.mark.parametrize("name", ["report", "run"])
def test_a_script_named_like_a_command_runs_with_run(tmpdir, runner, name):
    write(tmpdir, name, "import sys\nprint('I am %s ' + ' '.join(sys.argv))\n" % name)
    status, out, err = run(tmpdir, ["run", "-q", "-o", "x.json", name, "a"], runner)
    assert status == 0, err
    assert out == "I am %s %s a\n" % (name, name)
    # ./name is a path, never a command; so is what follows --.
    status, out, err = run(tmpdir, ["./" + name], runner)
    assert status == 0 and out == "I am %s ./%s\n" % (name, name), err
    status, out, err = run(tmpdir, ["--", name], runner)
    assert status == 0 and out == "I am %s %s\n" % (name, name), err
    assert sorted(os.listdir(str(tmpdir))) == sorted([name, "x.json"])  # the shorthand saved nothing
    # As the first argument, the name is the command: report then says how to run the script.
    if name == "report":
        status, out, err = run(tmpdir, ["report", "report"], runner)
        assert status == 2
        assert "mempulse run report" in err and len(err.splitlines()) == 1


def test_the_result_is_saved_where_run_started_even_if_the_program_chdirs(tmpdir):
    write(tmpdir, "sub/cd.py", "import os\nos.chdir('/')\n")
    status, out, err = run(tmpdir, ["run", "-q", "sub/cd.py"])
    assert status == 0, err
    name = saved_line(err)
    assert re.match(r"^mempulse-cd-\d+\.json$", name) and tmpdir.join(name).check()


def test_run_writes_the_result_when_the_program_calls_os_exit(tmpdir):
    write(tmpdir, "bye.py", "import os\nblob = b'x' * (8 << 20)\nos._exit(5)\n")
    status, out, err = run(tmpdir, ["run", "-q", "-o", "bye.json", "bye.py"])
    assert status == 5
    assert saved_line(err) == "bye.json"
    assert [r.lineno for r in load(str(tmpdir.join("bye.json")))] == [1, 2, 3]


def test_report_prints_the_same_table(saved, monkeypatch):
    tmpdir, script, result = saved
    status, out, err = run(tmpdir, ["report", "run.json"])
    assert (status, err) == (0, "")
    monkeypatch.chdir(tmpdir)  # the table shows paths relative to the current directory
    assert out == mempulse.format_trace_result(result)


def test_report_sort_min_increment_and_top_shape_the_table(saved):
    tmpdir, script, result = saved
    big, more, free = (line_in(script, m) for m in ("L:big", "L:more", "L:free"))
    status, out, err = run(tmpdir, ["report", "run.json", "--sort", "increment", "--top", "2"])
    assert status == 0, err
    rows = out.splitlines()[2:-1]
    assert [r.split()[0] for r in rows] == ["grow.py:%d" % big, "grow.py:%d" % more]
    status, out, err = run(tmpdir, ["report", "run.json", "--min-increment", "6MiB"])
    assert [r.split()[0] for r in out.splitlines()[2:-1]] == ["grow.py:%d" % n for n in (big, more, free)]


def test_report_as_json_and_csv(saved):
    tmpdir, script, result = saved
    status, out, err = run(tmpdir, ["report", "run.json", "--format", "json", "-o", "again.json"])
    assert (status, out, err) == (0, "", "")
    assert load(str(tmpdir.join("again.json"))) == result
    status, out, err = run(tmpdir, ["report", "run.json", "--format", "csv"])
    assert status == 0, err
    assert out.splitlines()[0].startswith("filename,lineno,function,")
    assert len(out.splitlines()) == len(result) + 1
    status, out, err = run(tmpdir, ["report", "run.json", "--format=json"])
    assert json.loads(out)["format"] == "mempulse-trace"


@needs_jinja2
def test_report_html_goes_beside_the_file_by_default(saved):
    tmpdir, script, result = saved
    status, out, err = run(tmpdir, ["report", "run.json", "--format", "html"])
    assert status == 0 and out == ""
    assert err == "python -m mempulse report: wrote run.html\n"
    with open(str(tmpdir.join("run.html")), "rb") as f:
        page = f.read().decode("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "more = grow(8)  # L:more" in page
    # The format follows -o's extension.
    status, out, err = run(tmpdir, ["report", "run.json", "-o", "other.htm"])
    assert (status, out, err) == (0, "", "")
    assert tmpdir.join("other.htm").check()


@needs_matplotlib
def test_report_png_has_the_plots_dimensions(saved):
    from mempulse import _plot

    tmpdir, script, result = saved
    status, out, err = run(tmpdir, ["report", "run.json", "--format", "png", "-o", "p.png"])
    assert (status, out, err) == (0, "", "")
    timeline = bool(getattr(result, "series", None))
    assert png_size(str(tmpdir.join("p.png"))) == (
        int(round(_plot.WIDTH_INCHES * _plot.DPI)),
        int(round(_plot.figure_height(len(result), timeline) * _plot.DPI)),
    )
    status, out, err = run(tmpdir, ["report", "run.json", "--format", "png"])
    assert status == 0 and err == "python -m mempulse report: wrote run.png\n"
    assert png_size(str(tmpdir.join("run.png")))[0] == 1200


BAD_FILES = [
    ("notjson.json", b"Callsite  Method Name\n", "invalid JSON"),
    ("truncated.json", b'{"format": "mempulse-trace", "version": 1, "metadata": {}, "reco', "invalid JSON"),
    ("other.json", b'{"format": "speedscope", "version": 1}', "expected a JSON object with format 'mempulse-trace'"),
    ("future.json", b'{"format": "mempulse-trace", "version": 99, "metadata": {}, "records": []}',
     "unsupported mempulse result version 99"),
    ("list.json", b"[1, 2, 3]", "not a mempulse result"),
    ("fields.json", b'{"format": "mempulse-trace", "version": 1, "metadata": {}, "records": [{"lineno": 1}]}',
     "record 0"),
    ("binary.json", b"\xff\xfe\x00garbage", "cannot read"),
]


@pytest.mark.parametrize("name, content, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_is_one_line_and_status_2(tmpdir, runner, name, content, message):
    with open(str(tmpdir.join(name)), "wb") as f:
        f.write(content)
    status, out, err = run(tmpdir, ["report", name, "-o", "out.txt"], runner)
    assert status == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(RUNNERS[runner][1] + " report: error: cannot read %r: " % name)
    assert message in lines[0]
    assert not tmpdir.join("out.txt").check()


BAD_REPORT_ARGS = [
    (["report"], "no FILE given: python -m mempulse report [options] FILE"),
    (["report", "missing.json"], "cannot read 'missing.json': No such file or directory"),
    (["report", "run.json", "--format", "pdf"], "argument -f/--format: invalid choice"),
    (["report", "run.json", "-o", "no/such/dir/x.txt"], "no such directory"),
    (["report", "run.json", "--top", "0"], "argument --top: must be a positive integer"),
    (["report", "run.json", "--format", "png", "-o", "-"], "a picture needs a file name"),
    (["run"], "no script given"),
    (["run", "-o", "no/such/dir/r.json", "ran.py"], "cannot write the result to"),
    (["run", "--html", "no/such/dir/r.html", "ran.py"], "no such directory"),
    (["run", "--top", "x", "ran.py"], "argument --top"),
]


@pytest.mark.parametrize("args, message", BAD_REPORT_ARGS, ids=[" ".join(a) for a, _ in BAD_REPORT_ARGS])
def test_bad_arguments_are_one_line_and_status_2(saved, args, message):
    tmpdir = saved[0]
    write(tmpdir, "ran.py", "open('ran', 'w').close()\n")
    status, out, err = run(tmpdir, args)
    assert status == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("python -m mempulse %s: error: " % args[0])
    assert message in lines[0]
    assert not tmpdir.join("ran").check()


def blocked(tmpdir, package, args):
    """mempulse's main(args) in a real interpreter where ``package`` cannot be imported."""
    code = (
        "import sys; sys.modules[%r] = None\n"
        "from mempulse._cli import main\n"
        "sys.exit(main(%r))\n" % (package, args)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=str(tmpdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate()
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.skipif(sys.version_info[0] < 3, reason="blocks jinja2 through importlib.util.find_spec (Python 3)")
def test_html_without_jinja2_says_how_to_install_it(saved):
    tmpdir = saved[0]
    write(tmpdir, "ran.py", "open('ran', 'w').close()\n")
    hint = "the html format needs Jinja2, which is not installed: pip install mempulse[html]"
    assert blocked(tmpdir, "jinja2", ["report", "run.json", "--format", "html"]) == (
        2, "", "mempulse report: error: %s\n" % hint)
    assert blocked(tmpdir, "jinja2", ["run", "--html", "r.html", "ran.py"]) == (2, "", "mempulse run: error: %s\n" % hint)
    assert not tmpdir.join("run.html").check() and not tmpdir.join("ran").check()


def test_help_of_each_command(tmpdir, runner):
    prog = RUNNERS[runner][1]
    status, out, err = run(tmpdir, ["--help"], runner)
    assert status == 0 and " run [options] script.py" in out and " report FILE" in out
    status, out, err = run(tmpdir, ["run", "--help"], runner)
    assert status == 0 and out.startswith("usage: %s run " % prog)
    flat = " ".join(out.split())
    for example in ("-o run.json", "--html report.html", "--plot memory.png", "--table report.txt", "--top 20"):
        assert example in flat, example
    status, out, err = run(tmpdir, ["report", "--help"], runner)
    assert status == 0 and out.startswith("usage: %s report " % prog)
    flat = " ".join(out.split())
    for example in ("--format html", "-o report.html", "--top 20", "pip install mempulse[html]"):
        assert example in flat, example
