"""Python 3.12+: drive the tracer with ``sys.monitoring`` (PEP 669).

Instead of a ``sys.settrace`` function called on every line of every traced
frame's code, mempulse registers as a monitoring tool and asks for LINE
events only on the code objects it traces, so other code pays nothing per
line, and it leaves ``sys.settrace`` to coverage.py (its default core) and
debuggers; coverage.py's own ``sys.monitoring`` core is another tool id.

Events:
- PY_START (global): a frame starts; it is traced when its caller is the
  newest traced frame of this thread and the depth allows, like the
  settrace driver's "call" event.  Its code then gets the local events.
- LINE, PY_RESUME, PY_RETURN, PY_YIELD (local, on traced code objects, and
  the last three on mempulse's own code, whose frames are transparent).
- PY_UNWIND, PY_THROW (global only in PEP 669): a frame left by an
  exception, a generator resumed by ``throw()``.

LINE events carry no frame: they go straight to the C tracer bound to the
calling thread.  A frame running traced code that is not itself traced (a
deeper recursive call, say) is pushed as a *muted* frame, so its lines are
dropped in C; threads without a bound tracer are ignored in C too.
"""
import sys
import threading

monitoring = getattr(sys, "monitoring", None)

# Tool ids by convention: 0 debugger, 1 coverage, 2 profiler, 5 optimizer.
# mempulse is a profiler; where a profiler (cProfile on 3.12+) already holds
# id 2, the unassigned ones serve.
_TOOL_IDS = (2, 3, 4)
_TOOL_NAME = "mempulse"

_TRACED, _OWN_FRAME, _MUTED = 0, 1, 2


_BOOTSTRAP_INNER = threading.Thread._bootstrap_inner.__code__


def _is_thread_run(frame):
    """Is frame a Thread's run(), called by the thread's bootstrap?"""
    caller = frame.f_back
    if caller is None or caller.f_code is not _BOOTSTRAP_INNER:
        return False
    run = getattr(caller.f_locals.get("self"), "run", None)
    return getattr(getattr(run, "__func__", run), "__code__", None) is frame.f_code


def available():
    """True where the interpreter has sys.monitoring."""
    return monitoring is not None


def _claim_tool_id():
    for tool in _TOOL_IDS:
        if monitoring.get_tool(tool) is None:
            try:
                monitoring.use_tool_id(tool, _TOOL_NAME)
            except ValueError:  # taken meanwhile
                continue
            return tool
    return None


class Monitor(object):
    """One trace's use of sys.monitoring: its tool id, callbacks, code objects.

    ``start`` returns False where no tool id is free (the caller then uses
    ``sys.settrace``).
    """

    def __init__(self, tracer, active, own_code_id):
        self.tracer = tracer
        self.active = active  # threading.local with .session
        self.own_code_id = own_code_id
        self.tool = None
        self.enabled = {}  # code object -> local events set on it

    def start(self, main, frame, record_root):
        tool = _claim_tool_id()
        if tool is None:
            return False
        self.tool = tool
        try:
            self._install(main, frame, record_root)
        except BaseException:
            self.stop()
            raise
        return True

    def _install(self, main, frame, record_root):
        tool = self.tool
        events = monitoring.events
        self.local_traced = events.LINE | events.PY_RESUME | events.PY_RETURN | events.PY_YIELD
        self.local_own = events.PY_RESUME | events.PY_RETURN | events.PY_YIELD
        main.kinds = [_TRACED if record_root else _OWN_FRAME]
        callbacks = self._callbacks()
        for event, function in callbacks.items():
            monitoring.register_callback(tool, event, function)
        if record_root:
            self._enable(frame.f_code, self.local_traced)
        monitoring.set_events(tool, events.PY_START | events.PY_UNWIND | events.PY_THROW)

    def stop(self):
        """Turn every event off and give the tool id back."""
        tool, self.tool = self.tool, None
        if tool is None:
            return
        monitoring.set_events(tool, 0)
        for code in self.enabled:
            monitoring.set_local_events(tool, code, 0)
        self.enabled.clear()  # the callbacks hold it too
        monitoring.free_tool_id(tool)  # also unregisters the callbacks

    def _enable(self, code, events):
        if self.enabled.get(code) != events:
            self.enabled[code] = events
            monitoring.set_local_events(self.tool, code, events)

    def _callbacks(self):
        events = monitoring.events
        tracer = self.tracer
        active = self.active
        depth = tracer.trace_depth
        own = self.own_code_id
        enabled = self.enabled
        enable = self._enable
        local_traced, local_own = self.local_traced, self.local_own
        getframe = sys._getframe
        from mempulse._core import ffi, lib

        mp_call, mp_line, mp_return = lib.mp_bound_call, lib.mp_bound_line, lib.mp_bound_return

        def on_line(code, lineno):
            mp_line(lineno)

        def enter(session, code, frame):
            # A frame starts or resumes (caller holds session.lock).
            stack = session.stack
            if frame.f_back is stack[-1]:
                code_id = tracer._code_ids.get(code)
                if code_id is None:
                    code_id = tracer._code_id(code)
                level = session.levels[-1]
                if code_id == own:
                    # Transparent: what it calls keeps its level.
                    stack.append(frame)
                    session.levels.append(level)
                    session.kinds.append(_OWN_FRAME)
                    enable(code, local_own)
                    return
                if level < depth:
                    stack.append(frame)
                    session.levels.append(level + 1)
                    session.kinds.append(_TRACED)
                    enable(code, local_traced)
                    mp_call(code_id)
                    return
            if enabled.get(code) == local_traced:
                # Traced code running where it is not traced: mute its lines.
                stack.append(frame)
                session.levels.append(depth)
                session.kinds.append(_MUTED)
                mp_call(-1)

        def start(code, frame):
            session = getattr(active, "session", None)
            if session is None:
                # A thread started inside the trace begins its run().
                if code.co_name != "run" or not _is_thread_run(frame):
                    return
                session = tracer._thread_session(frame.f_back)
                if session is None:
                    return
                session.kinds = [_OWN_FRAME]
            with session.lock:
                if not session.ended:
                    enter(session, code, frame)

        def on_start(code, offset):
            start(code, getframe(1))

        def on_throw(code, offset, exc):
            start(code, getframe(1))

        def on_leave(code, offset, value):
            session = getattr(active, "session", None)
            if session is None:
                return
            frame = getframe(1)
            with session.lock:
                stack = session.stack
                if session.ended or len(stack) < 2 or stack[-1] is not frame:
                    return
                stack.pop()
                session.levels.pop()
                if session.kinds.pop() != _OWN_FRAME:
                    mp_return()
                if len(stack) == 1 and session is not tracer._main:
                    # The thread's first frame (Thread.run) returned.
                    session.finish()
                    lib.mp_bind(ffi.NULL)
                    active.session = None

        return {
            events.LINE: on_line,
            events.PY_START: on_start,
            events.PY_RESUME: on_start,
            events.PY_THROW: on_throw,
            events.PY_RETURN: on_leave,
            events.PY_YIELD: on_leave,
            events.PY_UNWIND: on_leave,
        }
