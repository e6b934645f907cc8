"""A tracer for code that one of mempulse's own functions calls.

The pytest plugin and the IPython magic call the user's code from a frame of
their own; mempulse's frames are transparent to the tracer, so that code's
lines are level 1, as the body of an ``@profile`` function is.
"""
from mempulse import _tracer

_default_class = []  # chosen once per process: checking /proc opens files


def tracer_for_call(callback, depth):
    """A tracer to enter in the calling mempulse frame, or None.

    The C tracer where ``/proc`` is readable, else the psutil one (its
    constructor raises ImportError without psutil).  None when a mempulse
    tracer is already active on this thread: that one sees the call.
    """
    if _tracer.current_tracer() is not None:
        return None
    if not _default_class:
        from mempulse._profile import _default_tracer_class

        _default_class.append(_default_tracer_class())
    tracer = _default_class[0](callback, depth)
    tracer._record_caller = False  # the entering frame is mempulse's, not the user's
    return tracer
