"""The one builder of "a tracer for code that one of mempulse's own functions calls".

``@profile``, the command line, the pytest plugin and the IPython magic call
the user's code from a frame of their own; mempulse's frames are
transparent to the engine, so that code's lines are level 1, as the body of
an ``@profile`` function is.
"""
from mempulse import _samplers, _tracer

_default_class = []  # chosen once per process


def default_tracer_class():
    """:class:`cMemoryUsageTracer` where ``/proc`` is readable, else :class:`MemoryUsageTracer`."""
    if not _default_class:
        try:
            _samplers.ProcSampler()
            chosen = _tracer.cMemoryUsageTracer
        except (OSError, RuntimeError):
            chosen = _tracer.MemoryUsageTracer
        _default_class.append(chosen)
    return _default_class[0]


def tracer_for_call(callback, depth, tracer_class=None, steps_aside=False):
    """A tracer to enter in the calling mempulse frame, or None.

    None when a mempulse tracer is already active on this thread (that one
    sees the call).  ``steps_aside``: a user tracer entered inside this
    trace runs on its own while this one waits (the plugin, the CLI and the
    magic trace code that may use mempulse itself).  The default class
    raises ImportError without psutil where /proc is unreadable.
    """
    if _tracer.current_tracer() is not None:
        return None
    tracer = (tracer_class or default_tracer_class())(callback, depth)
    tracer._record_caller = False  # the entering frame is mempulse's, not the user's
    tracer._steps_aside = steps_aside
    return tracer
