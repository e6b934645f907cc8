"""pytest plugin: ``limit_memory`` and ``limit_leaks`` markers, ``pytest --mempulse``.

Registered through the ``pytest11`` entry point, so pytest loads it wherever
mempulse is installed; it traces nothing unless a test has a marker, the
``mempulse_limit_memory`` ini option is set, or ``--mempulse`` /
``--mempulse-json`` was given::

    @pytest.mark.limit_memory("10 MB")
    def test_parse():
        rows = parse(big_input)

    @pytest.mark.limit_leaks("1 MB", runs=5, warmups=1)
    def test_handler_does_not_leak():
        handle(request)

    $ pytest --mempulse --mempulse-depth 2 --mempulse-json results/

    # pytest.ini / tox.ini [pytest] / setup.cfg [tool:pytest]
    mempulse_limit_memory = 200 MB

The test function is called from a wrapper in this module: mempulse's own
frames are transparent to the tracer, so the test's own lines are level 1
and pytest's and pluggy's frames take no level.
"""
import inspect
import os
import re

import pytest

MARKER = "limit_memory"
LEAKS_MARKER = "limit_leaks"
LIMIT_INI = "mempulse_limit_memory"
LEAK_RUNS, LEAK_WARMUPS = 5, 1
# item.add_report_section("call", SECTION, ...) titles it "Captured <SECTION> call";
# sections travel with the report, so pytest-xdist workers' tables reach the controller.
SECTION = "mempulse"
SECTION_TITLE = "Captured %s call" % SECTION
TOP_LINES = 5  # rows shown in a limit_memory failure


def pytest_addoption(parser):
    group = parser.getgroup("mempulse", "line-by-line memory profiling (mempulse)")
    group.addoption(
        "--mempulse",
        action="store_true",
        default=False,
        help="trace each test function with mempulse and print its table of "
        "memory by line in the terminal summary",
    )
    group.addoption(
        "--mempulse-depth",
        action="store",
        type=int,
        default=1,
        metavar="N",
        help="levels traced under --mempulse and limit_memory: 1 (default) = "
        "the test function's own lines, 2 = also the lines of what it calls, ...",
    )
    group.addoption(
        "--mempulse-json",
        action="store",
        default=None,
        metavar="DIR",
        help="write each traced test's result as JSON (mempulse.load_json reads it) "
        "into DIR, one file per test, to track memory across commits; traces "
        "every test",
    )
    parser.addini(
        LIMIT_INI,
        "default limit_memory size for every test without its own marker, e.g. 200 MB",
        default=None,
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "limit_memory(size): fail the test if its memory growth (USS) or its peak "
        "(highest RSS above where it started) exceeds size, e.g. '100 MB' (1000**2) "
        "or '100 MiB' (1024**2); mempulse shows the lines that grew most.",
    )
    config.addinivalue_line(
        "markers",
        "limit_leaks(size, runs=5, warmups=1): run the test body warmups times, then "
        "runs more times, and fail if its memory (USS) keeps growing by more than size "
        "per run (the median run's growth); mempulse shows the lines that grew.",
    )
    depth = config.getoption("mempulse_depth")
    if depth < 1:
        raise pytest.UsageError("--mempulse-depth must be 1 or more, got %d" % depth)
    _check_ini_limit(config)
    json_dir = config.getoption("mempulse_json")
    if json_dir is not None:
        json_dir = os.path.abspath(json_dir)
        try:
            if not os.path.isdir(json_dir):
                os.makedirs(json_dir)
        except OSError as e:
            if not os.path.isdir(json_dir):  # another xdist worker made it meanwhile
                raise pytest.UsageError("--mempulse-json: cannot create %r: %s" % (json_dir, e))
        config._mempulse_json = json_dir
    worker = hasattr(config, "workerinput") or hasattr(config, "slaveinput")  # pytest-xdist
    if config.getoption("mempulse") and not worker:
        config.pluginmanager.register(_Summary(config), "mempulse-summary")


def _limit_of(item):
    """The item's limit_memory size in bytes, None without the marker.

    Raises ValueError/TypeError with a message for a bad marker.
    """
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return _check_ini_limit(item.config)
    if len(marker.args) != 1 or marker.kwargs:
        raise ValueError(
            "takes one size, e.g. @pytest.mark.limit_memory('100 MB'); got %s"
            % _call_text(marker)
        )
    from mempulse._sizes import parse_size

    return parse_size(marker.args[0])


def _check_ini_limit(config):
    """The ``mempulse_limit_memory`` ini size in bytes, or None; UsageError if bad."""
    text = config.getini(LIMIT_INI)
    if text is None or not str(text).strip():
        return None
    from mempulse._sizes import parse_size

    try:
        return parse_size(str(text).strip())
    except ValueError as e:
        raise pytest.UsageError("%s: %s" % (LIMIT_INI, e))


def _leaks_of(item):
    """(size, runs, warmups) of the item's limit_leaks marker, None without it.

    Raises ValueError/TypeError with a message for a bad marker.
    """
    marker = item.get_closest_marker(LEAKS_MARKER)
    if marker is None:
        return None
    kwargs = dict(marker.kwargs)
    runs = kwargs.pop("runs", LEAK_RUNS)
    warmups = kwargs.pop("warmups", LEAK_WARMUPS)
    if len(marker.args) != 1 or kwargs:
        raise ValueError(
            "takes one size and optionally runs= and warmups=, e.g. "
            "@pytest.mark.limit_leaks('1 MB', runs=5); got %s" % _call_text(marker, LEAKS_MARKER)
        )
    for name, value, least in (("runs", runs, 2), ("warmups", warmups, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError("%s must be an int >= %d, got %r" % (name, least, value))
    from mempulse._sizes import parse_size

    return parse_size(marker.args[0]), runs, warmups


def _call_text(marker, name=MARKER):
    parts = [repr(a) for a in marker.args]
    parts += ["%s=%r" % kv for kv in sorted(marker.kwargs.items())]
    return "%s(%s)" % (name, ", ".join(parts))


def _limit_text(item):
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return "%s = %s" % (LIMIT_INI, item.config.getini(LIMIT_INI).strip())
    return _call_text(marker)


def _function_of(method):
    return getattr(method, "__func__", method)  # Python 2: unbound methods


_PLAIN_RUNTEST = _function_of(pytest.Function.runtest)


def _untraceable(item):
    """Why the item's test function cannot be traced, or None."""
    runtest = type(item).runtest
    if not isinstance(item, pytest.Function) or _function_of(runtest) is not _PLAIN_RUNTEST:
        # unittest methods and doctests do not go through pytest_pyfunc_call.
        return "%s is not a plain pytest test function" % type(item).__name__
    from mempulse._profile import _is_async

    func = item.obj
    if _is_async(func) or inspect.isgeneratorfunction(func):
        return "its body does not run inside the call (async or generator function)"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for name, read in ((MARKER, _limit_of), (LEAKS_MARKER, _leaks_of)):
        try:
            found = read(item)
        except (TypeError, ValueError) as e:
            pytest.fail("mempulse: bad %s marker on %s: %s" % (name, item.name, e), pytrace=False)
        if name == MARKER:
            limit = found
        else:
            leaks = found
    table = item.config.getoption("mempulse")
    json_dir = getattr(item.config, "_mempulse_json", None)
    if limit is None and leaks is None and not table and json_dir is None:
        return
    why = _untraceable(item)
    if why is not None:
        marked = [m for m in (MARKER, LEAKS_MARKER) if item.get_closest_marker(m) is not None]
        if marked:
            pytest.fail("mempulse: %s cannot measure %s: %s" % (marked[0], item.name, why), pytrace=False)
        return
    item._mempulse_plan = _Plan(item, limit, table, leaks, json_dir)


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    plan = getattr(pyfuncitem, "_mempulse_plan", None)
    if plan is None:
        yield
        return
    original = pyfuncitem.obj
    pyfuncitem.obj = plan.wrap(original)
    try:
        yield
    finally:
        pyfuncitem.obj = original
        del pyfuncitem._mempulse_plan


class _Plan(object):
    """What to do for one test: trace its call, check the limit, keep the table."""

    def __init__(self, item, limit, table, leaks=None, json_dir=None):
        self.item = item
        self.limit = limit
        self.table = table
        self.leaks = leaks
        self.json_dir = json_dir
        self.depth = item.config.getoption("mempulse_depth")

    def wrap(self, func):
        def call(**kwargs):
            return self.run(func, kwargs)

        return call

    def run(self, func, kwargs):
        if self.limit is not None or self.table or (self.json_dir is not None and self.leaks is None):
            self.traced_call(func, kwargs)  # the first warm-up run of a leak check
        elif self.leaks is not None and self.leaks[2] > 0:
            func(**kwargs)
        if self.leaks is not None:
            from mempulse._leaks import check_leaks

            check_leaks(self, func, kwargs)

    def fail_if_traced(self, what):
        """Someone traces the whole run: a measuring marker cannot work."""
        pytest.fail(
            "mempulse: %s cannot measure %s: another mempulse tracer "
            "is already active on this thread" % (what, self.item.name),
            pytrace=False,
        )

    def save(self, result):
        """Under --mempulse-json: the test's result to DIR/<nodeid>.json."""
        if self.json_dir is None:
            return
        from mempulse._export import dump_json

        result.metadata["test"] = self.item.nodeid
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", self.item.nodeid).strip("_") + ".json"
        with open(os.path.join(self.json_dir, name), "w") as fp:
            dump_json(result, fp)

    def traced_call(self, func, kwargs):
        from mempulse import _measure
        from mempulse._own_call import tracer_for_call

        results = []
        tracer = tracer_for_call(results.append, self.depth, steps_aside=True)
        if tracer is None:
            # Someone traces the whole run: let that trace see this test.
            if self.limit is not None:
                self.fail_if_traced("limit_memory")
            return func(**kwargs)
        start = _measure.Start(tracer)
        try:
            with tracer:
                func(**kwargs)
        finally:
            # The table also for a test that failed: it may say why.
            if self.table and results:
                from mempulse._report import format_trace_result

                self.item.add_report_section("call", SECTION, format_trace_result(results[0]))
            if results:
                self.save(results[0])
        if self.limit is not None:
            usage = _measure.finish(start, results[0])
            message = _measure.over_limit(usage, self.limit, results[0], TOP_LINES)
            if message is not None:
                pytest.fail(
                    "mempulse: %s exceeded %s:\n%s" % (self.item.name, _limit_text(self.item), message),
                    pytrace=False,
                )


class _Summary(object):
    """Under --mempulse: collects each test's table and prints them at the end.

    It reads the tables from the reports, so it works the same when
    pytest-xdist workers ran the tests and only the reports came back.
    """

    def __init__(self, config):
        self.config = config
        self.tables = []

    def pytest_runtest_logreport(self, report):
        if report.when != "call":
            return
        for title, content in report.sections:
            if title == SECTION_TITLE:
                self.tables.append((report.nodeid, content))

    def pytest_terminal_summary(self, terminalreporter):
        if not self.tables:
            return
        terminalreporter.write_sep("=", "mempulse: memory by line (depth %d)"
                                   % self.config.getoption("mempulse_depth"))
        for nodeid, table in self.tables:
            terminalreporter.write_line(nodeid)
            for line in table.rstrip("\n").split("\n"):
                terminalreporter.write_line("    " + line)
