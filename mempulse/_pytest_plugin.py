"""pytest plugin: ``@pytest.mark.limit_memory("100 MB")`` and ``pytest --mempulse``.

Registered through the ``pytest11`` entry point, so pytest loads it wherever
mempulse is installed; it traces nothing unless a test has the marker or
``--mempulse`` was given::

    @pytest.mark.limit_memory("10 MB")
    def test_parse():
        rows = parse(big_input)

    $ pytest --mempulse --mempulse-depth 2

The test function is called from a wrapper in this module: mempulse's own
frames are transparent to the tracer, so the test's own lines are level 1
and pytest's and pluggy's frames take no level.
"""
import inspect

import pytest

MARKER = "limit_memory"
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


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "limit_memory(size): fail the test if its memory growth (USS) or its peak "
        "(highest RSS above where it started) exceeds size, e.g. '100 MB' (1000**2) "
        "or '100 MiB' (1024**2); mempulse shows the lines that grew most.",
    )
    depth = config.getoption("mempulse_depth")
    if depth < 1:
        raise pytest.UsageError("--mempulse-depth must be 1 or more, got %d" % depth)
    worker = hasattr(config, "workerinput") or hasattr(config, "slaveinput")  # pytest-xdist
    if config.getoption("mempulse") and not worker:
        config.pluginmanager.register(_Summary(config), "mempulse-summary")


def _limit_of(item):
    """The item's limit_memory size in bytes, None without the marker.

    Raises ValueError/TypeError with a message for a bad marker.
    """
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    if len(marker.args) != 1 or marker.kwargs:
        raise ValueError(
            "takes one size, e.g. @pytest.mark.limit_memory('100 MB'); got %s"
            % _call_text(marker)
        )
    from mempulse._sizes import parse_size

    return parse_size(marker.args[0])


def _call_text(marker):
    parts = [repr(a) for a in marker.args]
    parts += ["%s=%r" % kv for kv in sorted(marker.kwargs.items())]
    return "limit_memory(%s)" % ", ".join(parts)


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
    try:
        limit = _limit_of(item)
    except (TypeError, ValueError) as e:
        pytest.fail("mempulse: bad limit_memory marker on %s: %s" % (item.name, e), pytrace=False)
    table = item.config.getoption("mempulse")
    if limit is None and not table:
        return
    why = _untraceable(item)
    if why is not None:
        if limit is not None:
            pytest.fail("mempulse: limit_memory cannot measure %s: %s" % (item.name, why), pytrace=False)
        return
    item._mempulse_plan = _Plan(item, limit, table)


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

    def __init__(self, item, limit, table):
        self.item = item
        self.limit = limit
        self.table = table
        self.depth = item.config.getoption("mempulse_depth")

    def wrap(self, func):
        def call(**kwargs):
            return self.run(func, kwargs)

        return call

    def run(self, func, kwargs):
        from mempulse import _measure
        from mempulse._own_call import tracer_for_call

        results = []
        tracer = tracer_for_call(results.append, self.depth, steps_aside=True)
        if tracer is None:
            # Someone traces the whole run: let that trace see this test.
            if self.limit is not None:
                pytest.fail(
                    "mempulse: limit_memory cannot measure %s: another mempulse tracer "
                    "is already active on this thread" % self.item.name,
                    pytrace=False,
                )
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
        if self.limit is not None:
            usage = _measure.finish(start, results[0])
            message = _measure.over_limit(usage, self.limit, results[0], TOP_LINES)
            if message is not None:
                pytest.fail(
                    "mempulse: %s exceeded %s:\n%s"
                    % (self.item.name, _call_text(self.item.get_closest_marker(MARKER)), message),
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
