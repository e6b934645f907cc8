"""The @mempulse.profile decorator."""
import os
import sys

import pytest
from conftest import MiB, line_of, record_at, touched

import mempulse

# Every test here runs under each driver (sys.settrace; sys.monitoring on 3.12+).
pytestmark = pytest.mark.usefixtures("driver")


def helper():
    return touched(4 * MiB)  # L:helper


@mempulse.profile
def bare(x):
    """Docstring kept."""
    blob = helper()  # L:bare-body
    blob.close()
    return x * 2


def test_bare_decorator_writes_the_table_and_returns(capfd):
    assert bare(21) == 42
    assert bare.__name__ == "bare"
    assert bare.__doc__ == "Docstring kept."
    err = capfd.readouterr()[1]
    assert "Callsite" in err and "Increment" in err
    assert "test_profile.py:%d" % line_of("L:bare-body") in err
    # depth 1: the body only; the helper it calls is level 2.
    assert "test_profile.py:%d" % line_of("L:helper") not in err


@pytest.mark.parametrize("depth", [1, 2])
def test_decorator_with_arguments(tracer_class, depth):
    results = []

    @mempulse.profile(depth=depth, callback=results.append, tracer=tracer_class)
    def work():
        blob = helper()  # L:work-body
        blob.close()
        return "done"

    assert work() == "done"
    assert work() == "done"
    assert len(results) == 2
    body = record_at(results[0], line_of("L:work-body"))
    assert body.hits == 1 and body.increment >= 3 * MiB
    helper_lines = [r for r in results[0] if r.lineno == line_of("L:helper")]
    assert len(helper_lines) == (1 if depth == 2 else 0)
    # The wrapper is mempulse's own frame: never recorded.
    package = os.path.dirname(os.path.abspath(mempulse.__file__))
    assert not [r for r in results[0] if os.path.abspath(r.filename).startswith(package)]


def test_decorated_function_inside_an_active_trace_just_runs(tracer_class):
    inner, outer = [], []

    @mempulse.profile(callback=inner.append, tracer=tracer_class)
    def work():
        return helper()  # L:inner-body

    with tracer_class(outer.append, 3):
        blob = work()  # L:outer-call
    assert inner == []
    assert record_at(outer[0], line_of("L:outer-call")).increment >= 3 * MiB
    assert record_at(outer[0], line_of("L:inner-body")).hits == 1
    blob.close()


def test_exception_in_decorated_function(tracer_class):
    results = []

    @mempulse.profile(callback=results.append, tracer=tracer_class)
    def fail():
        raise KeyError("boom")  # L:fail

    with pytest.raises(KeyError):
        fail()
    assert len(results) == 1
    assert record_at(results[0], line_of("L:fail")).hits == 1
    assert sys.gettrace() is None


def test_depth_zero_decorator_just_calls():
    calls = []

    @mempulse.profile(depth=0, callback=calls.append)
    def work():
        return sys.gettrace()

    assert work() is None
    assert calls == []


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"depth": -1}, ValueError),
        ({"depth": "2"}, TypeError),
        ({"callback": 3}, TypeError),
    ],
)
def test_bad_decorator_arguments_fail_at_decoration(kwargs, error):
    with pytest.raises(error):
        mempulse.profile(**kwargs)(lambda: None)


def test_decorating_a_non_callable_fails():
    with pytest.raises(TypeError):
        mempulse.profile(42)


def test_generator_functions_are_refused():
    def numbers():
        yield 1

    with pytest.raises(TypeError) as info:
        mempulse.profile(numbers)
    assert "consumes it" in str(info.value)


@pytest.mark.skipif(sys.version_info < (3, 5), reason="needs async def")
def test_coroutine_functions_are_refused():
    namespace = {}
    exec("async def fetch():\n    return 1\n", namespace)
    with pytest.raises(TypeError):
        mempulse.profile(depth=2)(namespace["fetch"])
