"""Python 3.12+: drive the tracer with ``sys.monitoring`` (PEP 669).

Instead of a ``sys.settrace`` function called on every line of every traced
frame's code, mempulse registers as a monitoring tool and asks for LINE
events only on the code objects it traces, so other code pays nothing per
line, and it leaves ``sys.settrace`` to coverage.py (its default core) and
debuggers; coverage.py's own ``sys.monitoring`` core is another tool id.

Events:
- PY_START (global): a frame starts; it is traced when its caller is the
  newest traced frame of its thread and the depth allows, like the
  settrace driver's "call" event.  Its code then gets the local events.
  Any other start returns DISABLE: that code object stops reporting
  starts, so untraced code costs one callback per code object, not one
  per call.
- CALL (local, on frames that may have traced callees): when such a frame
  calls something after a start was disabled, ``restart_events`` turns
  the disabled starts back on, so a function first seen too deep is still
  traced when a traced frame calls it.  (It re-enables what other tools
  disabled too, which costs them one more event per location, nothing
  else.)
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


# The frame that calls a thread's run() (only needed where sys.monitoring is).
_BOOTSTRAP_INNER = threading.Thread._bootstrap_inner.__code__ if monitoring is not None else None


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
        self.tops = set()  # the newest frame of every session's stack

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
        leave = events.PY_RESUME | events.PY_RETURN | events.PY_YIELD
        self.traced_events = events.LINE | leave
        self.own_events = events.CALL | leave
        main.kinds = [_TRACED if record_root else _OWN_FRAME]
        self.tops.add(frame)
        callbacks = self._callbacks()
        for event, function in callbacks.items():
            monitoring.register_callback(tool, event, function)
        self._enable(frame.f_code, (self.traced_events if record_root else 0) | events.CALL)
        monitoring.set_events(tool, events.PY_START | events.PY_UNWIND | events.PY_THROW)

    def stop(self):
        """Turn every event off and give the tool id back."""
        tool, self.tool = self.tool, None
        if tool is None:
            return
        monitoring.set_events(tool, 0)
        for code in self.enabled:
            monitoring.set_local_events(tool, code, 0)
        # The callbacks hold these too.
        self.enabled.clear()
        self.tops.clear()
        monitoring.free_tool_id(tool)  # also unregisters the callbacks
        # What our PY_START callback disabled stays disabled for this tool
        # id until someone restarts events; do it now, for the next user.
        monitoring.restart_events()

    def _enable(self, code, events):
        """Add events to the local events of code."""
        old = self.enabled.get(code, 0)
        if old | events != old:
            self.enabled[code] = old | events
            monitoring.set_local_events(self.tool, code, old | events)

    def _callbacks(self):
        events = monitoring.events
        tracer = self.tracer
        active = self.active
        depth = tracer.trace_depth
        own = self.own_code_id
        enabled = self.enabled
        tops = self.tops
        enable = self._enable
        traced_events, own_events = self.traced_events, self.own_events
        line_event, call_event = events.LINE, events.CALL
        getframe = sys._getframe
        disable = monitoring.DISABLE
        restart = monitoring.restart_events
        pending = [False]  # some PY_START was disabled since the last restart
        from mempulse._core import ffi, lib

        mp_call, mp_line, mp_return = lib.mp_bound_call, lib.mp_bound_line, lib.mp_bound_return

        def on_line(code, lineno):
            mp_line(lineno)

        def push(session, frame, level, kind):
            stack = session.stack
            tops.discard(stack[-1])
            stack.append(frame)
            tops.add(frame)
            session.levels.append(level)
            session.kinds.append(kind)

        def enter(session, code, frame):
            """A frame starts or resumes below the newest one of its session."""
            level = session.levels[-1]
            code_id = tracer._code_ids.get(code)
            if code_id is None:
                code_id = tracer._code_id(code)
            if code_id == own:
                # Transparent: what it calls keeps its level.
                push(session, frame, level, _OWN_FRAME)
                enable(code, own_events)
            elif level < depth:
                push(session, frame, level + 1, _TRACED)
                enable(code, traced_events | (call_event if level + 1 < depth else 0))
                mp_call(code_id)
            elif enabled.get(code, 0) & line_event:
                mute(session, frame)
            else:
                return False
            return True

        def mute(session, frame):
            # Traced code running where it is not traced: its lines are
            # dropped in C, and what it calls is below the depth.
            push(session, frame, depth, _MUTED)
            mp_call(-1)

        def start(code, frame, may_disable):
            if frame.f_back in tops:
                session = active.session
                with session.lock:
                    if not session.ended and frame.f_back is session.stack[-1]:
                        if enter(session, code, frame):
                            return None
            elif enabled.get(code, 0) & line_event:
                session = getattr(active, "session", None)
                if session is not None:
                    with session.lock:
                        if not session.ended:
                            mute(session, frame)
                return None
            elif code.co_name == "run" and _is_thread_run(frame):
                # A thread started inside the trace begins its run().
                session = tracer._thread_session(frame.f_back)
                if session is not None:
                    session.kinds = [_OWN_FRAME]
                    tops.add(frame.f_back)
                    with session.lock:
                        enter(session, code, frame)
                return None
            if may_disable:
                pending[0] = True
                return disable
            return None

        def on_start(code, offset):
            return start(code, getframe(1), True)

        def on_resume(code, offset):
            start(code, getframe(1), False)

        def on_throw(code, offset, exc):
            start(code, getframe(1), False)

        def on_call(code, offset, callable_, arg0):
            # A frame that may have traced callees calls: starts disabled
            # since must be seen again.
            if pending[0]:
                pending[0] = False
                restart()

        def on_leave(code, offset, value):
            frame = getframe(1)
            if frame not in tops:
                return
            session = active.session
            with session.lock:
                stack = session.stack
                if session.ended or len(stack) < 2 or stack[-1] is not frame:
                    return
                tops.discard(stack.pop())
                tops.add(stack[-1])
                session.levels.pop()
                if session.kinds.pop() != _OWN_FRAME:
                    mp_return()
                if len(stack) == 1 and session is not tracer._main:
                    # The thread's first frame (its run()) returned.
                    tops.discard(stack[0])
                    session.finish()
                    lib.mp_bind(ffi.NULL)
                    active.session = None

        return {
            events.LINE: on_line,
            events.CALL: on_call,
            events.PY_START: on_start,
            events.PY_RESUME: on_resume,
            events.PY_THROW: on_throw,
            events.PY_RETURN: on_leave,
            events.PY_YIELD: on_leave,
            events.PY_UNWIND: on_leave,
        }
