"""Python 3.12+: the ``sys.monitoring`` (PEP 669) driver.

One process-wide monitoring tool serves every session of every thread: its
callbacks find the calling thread's trace (``_engine.active_trace()``) and
hand frames to the engine, so two sessions on two threads, or a user tracer
nested in an own-call one, never act on each other's state.  The tool id is
claimed when the first session starts and given back (callbacks
unregistered first) when the last one ends.  Ids 3 and 4, then 2: 2 is the
profiler's (cProfile takes it), 0 and 1 belong to debuggers and coverage.

Events:
- PY_START, PY_RESUME, PY_THROW (global): a frame starts or resumes; the
  engine decides whether it is followed, and its code then gets the local
  events below.  A start that is not followed returns DISABLE for that
  code location, so untraced code costs one callback, not one per call.  Starts of code that runs traced lines are never disabled
  (they must be muted), nor resumes (a generator first advanced too deep
  may be resumed by a traced frame later).
- CALL (local, on code whose frames may have traced callees): when the
  callee is code that was disabled, ``restart_events()`` turns it back on,
  once per code object: after that it is never disabled again ("sticky").
  A call site of a global name (``_bytecode.global_call_sites``) whose
  callee is sticky returns DISABLE: its callee changes only if the name is
  rebound, and the site is on again in the next block (its code's local
  events are set afresh) or after a restart.
- LINE (local, on traced code): straight to the C tracer bound to the thread.
- PY_RETURN, PY_YIELD (local), PY_UNWIND (global): a frame leaves.

LINE events carry no frame, and local events are per code object, so a frame
running traced code where it is not traced (a deeper recursive call, another
thread's call) is pushed as *muted*: C drops its lines.

3.13+: between blocks the global events stay on, served by idle callbacks:
a start is disabled (unless sticky), a resume, throw or unwind costs a call
of a C builtin.  Turning global events on or off (and ``restart_events()``)
makes CPython re-instrument all code that runs next, and 3.13 allows a
process 2**24 - 1 such changes: after that ``set_events`` and
``sys.settrace`` raise OverflowError for every tool.  A service tracing each
request must not spend two per request; it spends none once its handler's
callees are sticky and the code run between requests has been seen once (a
block that follows new code disabled between blocks restarts the events, as
it may reach that code where no CALL event shows it: a property, a sort key,
through filtered-out frames).  Code already seen between blocks, left
untraced by the next block, and reached by such a path later is missed.  The events go off when the tool is given back (at exit,
in a forked child, or when it holds the profiler's id).  3.12 turns them off
between blocks: it has no CALL event for ``f(*args)`` (CALL_FUNCTION_EX), so
code disabled between blocks could not be restarted when a traced frame
calls it that way; nor has it the limit.

3.13+: the codes a block traced stay *warm* after it (``_Monitor._keep_warm``):
their local events and the active callbacks stay, so the next block that
traces them sets nothing (setting a code's local events re-instruments it,
each way, at a cost that grows with its length).  Their events that run
outside any block go to :meth:`_Monitor.cool`; after ``_OUTSIDE_EVENTS`` of
them the tool goes idle as above.  A code with a call site turned off is
cleared at the block's end, so the next block starts with every site on.
"""
import operator as _operator
import sys
import threading
import weakref
from functools import partial as _partial
from types import FunctionType as _FunctionType
from types import MethodType as _MethodType

from mempulse import _bytecode, _core, _engine

monitoring = getattr(sys, "monitoring", None)

_TOOL_IDS = (3, 4, 2)
_TOOL_NAME = "mempulse"


def available():
    """True where the interpreter has sys.monitoring."""
    return monitoring is not None


class _Monitor(object):
    """The process's one use of sys.monitoring, shared by every session."""

    def __init__(self):
        self.lock = threading.RLock()
        self.users = set()  # the Drivers using the tool
        self.tool = None
        # Keyed by id: equal code objects (dataclasses' generated __init__)
        # are distinct for sys.monitoring.
        self.enabled = {}  # id(code) -> local events set on it
        self.codes = {}  # id(code) -> code, for those
        self.disabled = set()  # codes whose start was disabled since the last restart
        self.sticky = set()  # codes never to disable again
        # 3.13+: codes disabled outside blocks that a restart has given
        # one block's chance since; new_idle: one disabled that has not.
        self.idle_known = set()
        self.new_idle = False
        self.restarted = False
        self.self_loops = {}  # id(code) -> {jump destination offset: line}
        self.call_sites = {}  # id(code) -> its global call sites, for codes with CALL events
        self.interrupts = []  # the psutil meters' interrupt lists in use
        self.callbacks = None
        self.idle = False  # the tool is kept, with no events, for the next session
        self.events_on = False  # the global events are set
        # 3.13+, between blocks (see release): the last block's codes keep
        # their local events and the active callbacks stay, until `outside`
        # events have run outside any block.  `disarmed`: id(code) ->
        # {offset: what the call site turned off there called} (see disarm).
        self.warm = False
        self.outside = 0
        self.disarmed = {}

    # -- claiming ---------------------------------------------------------------
    def acquire(self, driver, interrupts=None):
        """Count a session in; False when no tool id is free.

        ``interrupts``: the session's meter runs Python code (psutil) during
        readings; what interrupted it is raised right after the C call.
        """
        with self.lock:
            # Users whose session ended without releasing (an interrupt).
            if self.users:
                self.users = set(d for d in self.users if d.live())
            if not self.users and self.warm:
                self.warm = False  # the callbacks and the last block's codes are in place
                self._choose_line_callback()
                if self.disarmed:
                    self._rearm_rebound()
            elif not self.users and self.idle:
                if _EVENTS_STAY_ON:
                    self._register(self.callbacks, _GLOBAL_EVENT_IDS)
                self.idle = False  # else events stay off until enable(..., start=True)
            elif not self.users:
                if self.tool is not None:
                    self._uninstall()
                tool = _claim_tool_id()
                if tool is None:
                    return False
                self.tool = tool
                try:
                    self._install()
                except BaseException:
                    self._uninstall()
                    raise
            if _EVENTS_STAY_ON and self.new_idle and self.tool is not None:
                # Code first run outside any block was disabled: this block
                # may reach it where no CALL event shows it (a property, a
                # sort key, through filtered-out code).  Once per new code,
                # not per block.
                self.idle_known.update(self.disabled)
                try:
                    self.restart(())
                except OverflowError:
                    pass  # no event change left: the block runs with what is enabled
                self.new_idle = False  # after: restart's own start is no news
            self.users.add(driver)
            driver.acquired = True
            if interrupts is not None:
                self.interrupts.append(interrupts)
                self._choose_line_callback()
            return True

    def release(self, driver, interrupts=None):
        """Count a session out; the last one gives the tool id back."""
        with self.lock:
            driver.acquired = False
            if interrupts is not None and interrupts in self.interrupts:
                self.interrupts.remove(interrupts)
                self._choose_line_callback()
            self.users.discard(driver)
            if self.users:
                self.users = set(d for d in self.users if d.live())
            if self.users or self.tool is None:
                return
            if self.tool == _TOOL_IDS[-1]:
                self._uninstall()  # the profiler's id: give it back to cProfile
            elif _EVENTS_STAY_ON and len(self.codes) <= _WARM_CODES:
                self._keep_warm()
            else:
                self._idle()

    def _keep_warm(self):
        """No session, 3.13+: the codes the last block traced keep their
        local events, and the active callbacks stay, so the next block that
        traces them sets nothing (setting a code's events re-instruments it,
        each way, at a cost that grows with its length).  Their call sites
        turned off stay off while they still call what they called (see
        _rearm_rebound).  See :meth:`cool` for code that runs outside blocks
        meanwhile."""
        codes = self.codes
        try:
            # Held weakly from now on: nothing of a finished block's is kept
            # alive; a code that dies takes its events, and its id, along.
            for key, code in list(codes.items()):
                if type(code) is not _WeakRef:
                    codes[key] = _WeakRef(code, _partial(self._forget, key))
            self.outside = 0
            self.warm = True
            self._choose_line_callback()
        except BaseException:
            self._uninstall()
            raise

    def disarm(self, code, offset, callee, frame):
        """A call site of a global name, in ``frame`` running ``code``, is
        turned off (its callee's start is sure to fire): note what it calls,
        so that a later block knows whether it still does."""
        try:
            record = (frame.f_globals, self.call_sites[id(code)][offset], _held(callee),
                      tuple(_held(c) for c in _callee_codes(callee)))
        except Exception:  # (not a site found in the bytecode: nothing to check)
            record = None
        self.disarmed.setdefault(id(code), {})[offset] = record

    def _rearm_rebound(self):
        """A block starts with warm codes whose call sites were turned off:
        the code of a site whose global name was rebound since (or whose
        callee's code changed) gets its events cleared, so the block sets
        them afresh, every site on (lock held).  Without this, a function
        whose start was disabled and that a site now calls would be missed."""
        for key, sites in list(self.disarmed.items()):
            for record in list(sites.values()):
                if not _still_calls(record):
                    break
            else:
                continue
            self.disarmed.pop(key, None)
            code = _code_of(self.codes.pop(key, None))
            self.enabled.pop(key, None)
            self.call_sites.pop(key, None)
            if code is not None:
                monitoring.set_local_events(self.tool, code, 0)

    def _forget(self, key, ref):
        # At a warm code's deallocation, before its id can be reused; no lock
        # (it may run anywhere), each pop is whole.
        if self.codes.get(key) is ref:
            self.codes.pop(key, None)
            self.enabled.pop(key, None)
            self.call_sites.pop(key, None)
            self.disarmed.pop(key, None)

    def cool(self):
        """Events ran outside any block while warm: after _OUTSIDE_EVENTS of
        them, go idle (the code running outside blocks is traced code's:
        let it run without callbacks).  From inside a callback, any thread."""
        self.outside += 1  # (unlocked: a count, off by one at worst)
        if self.outside < _OUTSIDE_EVENTS:
            return
        with self.lock:
            if self.warm and not self.users:
                self.warm = False
                self._choose_line_callback()
                self._idle()

    def _idle(self):
        """No session: the tool id is kept, and on 3.13+ its global events,
        served by the idle callbacks; no local event is left on any code.

        Turning the global events off and on again would re-instrument
        every code that runs afterwards, twice per block, and spend two of
        the process's event changes (see the module's docstring).
        """
        tool = self.tool
        try:
            if not _EVENTS_STAY_ON:
                self.events_on = False
                monitoring.set_events(tool, 0)
            set_local_events = monitoring.set_local_events
            for code in list(self.codes.values()):
                code = _code_of(code)
                if code is not None:
                    set_local_events(tool, code, 0)
            if _EVENTS_STAY_ON:
                self._register(self.idle_callbacks, _GLOBAL_EVENT_IDS)
            self.idle = True
        except BaseException:
            self._uninstall()
            raise
        finally:
            self.enabled.clear()
            self.codes.clear()
            self.call_sites.clear()
            self.disarmed.clear()

    def _install(self):
        global _MACHINERY_FILES
        if not _MACHINERY_FILES:
            _MACHINERY_FILES = _machinery_files()
        self.callbacks = _callbacks(self)
        self.idle_callbacks = _idle_callbacks(self)
        self._register(self.callbacks, _EVENT_IDS)
        _give_back_at_exit()

    def _register(self, callbacks, events):
        register, tool = monitoring.register_callback, self.tool
        for event in events:
            register(tool, event, callbacks[event])

    def give_back(self):
        """Give the tool id back if no session uses it (at exit)."""
        with self.lock:
            self.users = set(d for d in self.users if d.live())
            if not self.users and self.tool is not None:
                try:
                    self._uninstall()
                except Exception:
                    pass  # at exit: nothing to report to

    def _uninstall(self):
        self.idle = self.events_on = self.warm = False
        tool, self.tool = self.tool, None
        if tool is None:
            return
        try:
            try:
                monitoring.set_events(tool, 0)
            except OverflowError:
                pass  # no event change left (see the module's docstring): freed with its events
            for code in list(self.codes.values()):
                code = _code_of(code)
                if code is not None:
                    monitoring.set_local_events(tool, code, 0)
            for event in _EVENT_IDS:
                monitoring.register_callback(tool, event, None)
        finally:
            self.enabled.clear()
            self.codes.clear()
            self.call_sites.clear()
            self.disarmed.clear()
            self.sticky.clear()
            self.idle_known.clear()
            self.new_idle = False
            self.self_loops.clear()
            del self.interrupts[:]
            self.callbacks = self.idle_callbacks = None
            monitoring.free_tool_id(tool)
            if self.disabled or self.restarted:
                # DISABLE outlives the tool id: give the next user a clean slate.
                self.disabled.clear()
                self.restarted = False
                try:
                    monitoring.restart_events()
                except OverflowError:
                    pass

    def _choose_line_callback(self):
        # While warm no thread traces anything: a LINE event is a warm code
        # running outside blocks (the in-block callback checks nothing).
        if self.tool is not None:
            key = "warm LINE" if self.warm else "psutil LINE" if self.interrupts else monitoring.events.LINE
            monitoring.register_callback(self.tool, monitoring.events.LINE, self.callbacks[key])

    # -- local events --------------------------------------------------------
    def enable(self, code, events, start=False):
        """Give ``code`` the local ``events``; ``start``: then turn the
        global events on (a session's last step: from here on, every
        Python call is an event)."""
        # Under the lock: other threads' callbacks get here while the last
        # session's end turns every code's events off (_idle iterates codes).
        with self.lock:
            if self.tool is None or self.idle:
                return  # a late callback: no session left to trace for
            key = id(code)
            old = self.enabled.get(key, 0)
            if events & _LINE and not old & _LINE or events & _CALL and key not in self.call_sites:
                loops, sites = _bytecode.facts(code)
                if events & _LINE:
                    # Traced code is never disabled, between blocks either: a
                    # later block may reach it through frames that have no CALL
                    # event (filtered-out code, C), which could not restart it.
                    self.sticky.add(key)
                    if loops:
                        self.self_loops[key] = loops
                        events |= _JUMP
                if events & _CALL:
                    self.call_sites[key] = sites
            if old | events != old:
                self.enabled[key] = old | events
                self.codes[key] = code
                monitoring.set_local_events(self.tool, code, old | events)
            if start and not self.events_on:
                monitoring.set_events(self.tool, _GLOBAL_EVENTS)
                self.events_on = True

    def disable_outside(self, code):
        """What a start outside any block of its thread returns: DISABLE,
        unless the code is sticky; code not seen there before makes the
        next block restart (see acquire)."""
        key = id(code)
        if key in self.sticky:
            return None
        self.disabled.add(key)
        if key not in self.idle_known and code.co_filename not in _MACHINERY_FILES:
            self.new_idle = True
        return monitoring.DISABLE

    def restart(self, keys):
        """Turn disabled starts back on; the codes ``keys`` (ids; 3.12: all
        disabled ones) are never disabled again, so each costs one restart
        at most."""
        self.sticky.update(keys if _EVENTS_STAY_ON else self.disabled)
        self.disabled.clear()
        self.disarmed.clear()  # every call site is on again too
        self.restarted = True
        monitoring.restart_events()


_LINE, _JUMP, _CALL = (
    (monitoring.events.LINE, monitoring.events.JUMP, monitoring.events.CALL) if monitoring is not None else (0, 0, 0)
)
_GLOBAL_EVENTS = (
    monitoring.events.PY_START | monitoring.events.PY_RESUME | monitoring.events.PY_THROW | monitoring.events.PY_UNWIND
    if monitoring is not None
    else 0
)
_EVENT_NAMES = ("LINE", "JUMP", "CALL", "PY_START", "PY_RESUME", "PY_THROW", "PY_RETURN", "PY_YIELD", "PY_UNWIND")
_GLOBAL_EVENT_NAMES = ("PY_START", "PY_RESUME", "PY_THROW", "PY_UNWIND")
_EVENT_IDS = tuple(getattr(monitoring.events, name) for name in _EVENT_NAMES) if monitoring is not None else ()
_GLOBAL_EVENT_IDS = tuple(getattr(monitoring.events, name) for name in _GLOBAL_EVENT_NAMES) if monitoring is not None else ()
_EVENTS_STAY_ON = sys.version_info >= (3, 13)
# Between blocks (3.13+): at most this many codes stay warm, and this many
# events outside any block make the tool idle (see _Monitor.cool).
_WARM_CODES = 256
_OUTSIDE_EVENTS = 64
_WeakRef = weakref.ref


def _code_of(held):
    """A code as _Monitor.codes holds it (itself, or weakly once warm), or None."""
    return held() if type(held) is _WeakRef else held


def _held(thing):
    """``thing``, weakly where it can be (nothing of a block's kept alive)."""
    try:
        return _WeakRef(thing)
    except TypeError:  # a builtin function, say
        return thing


def _still_calls(record):
    """Does a turned-off call site still call what it did: its global name
    bound to the same callee, whose codes are the same?  (See
    _Monitor.disarm; False when it cannot tell.)"""
    if record is None:
        return False
    namespace, name, callee, codes = record
    if type(callee) is _WeakRef:
        callee = callee()
    current = namespace.get(name, _UNBOUND)
    if current is not callee:
        if current is not _UNBOUND or callee is None:
            return False
        builtins_ = namespace.get("__builtins__")  # not a global: a builtin
        if (builtins_.get(name) if isinstance(builtins_, dict) else getattr(builtins_, name, None)) is not callee:
            return False
    if type(callee) is _FunctionType:  # the common case
        if len(codes) != 1:
            return False
        then = codes[0]
        return callee.__code__ is (then() if type(then) is _WeakRef else then)
    try:
        now = _callee_codes(callee)
    except Exception:  # a metaclass's attribute lookup, say
        return False
    return len(now) == len(codes) and all(code is _code_of(then) for code, then in zip(now, codes))


_UNBOUND = object()


def _machinery_files():
    """The files of mempulse's own machinery: code that a block never reaches
    (it calls no code of the program's), so its start disabled between
    blocks is no news (see acquire).  The first blocks of a process would
    otherwise restart the events for the tracer's own construction and exit."""
    from mempulse import _collect, _core, _result, _samplers, _settrace, _tracer

    # As code objects name them (a module's __file__ may differ: a .pyc).
    functions = (
        _bytecode.facts, _collect.collect, _core.load, _engine.active_trace, _result.run_metadata,
        _samplers.meter, _settrace.warn, _tracer.check_arguments, available,
    )
    return frozenset(function.__code__.co_filename for function in functions)


_MACHINERY_FILES = frozenset()  # filled at the first claim (the modules import this one)
_monitor = _Monitor()
_at_exit = []


def _give_back_at_exit():
    # The global events stay on between blocks: give them back before
    # the interpreter finalizes (once per process).
    if not _at_exit:
        import atexit

        atexit.register(_monitor.give_back)
        _at_exit.append(True)


def _claim_tool_id():
    for tool in _TOOL_IDS:
        if monitoring.get_tool(tool) is None:
            try:
                monitoring.use_tool_id(tool, _TOOL_NAME)
            except ValueError:  # taken meanwhile
                continue
            return tool
    return None


def _callee_codes(callable_):
    """The Python code objects a call of ``callable_`` starts directly:
    a function's or method's, a class's ``__init__``/``__new__``, an
    object's ``__call__``, through ``functools.partial``.  Code a C
    function calls back (a sort key) is not found.  Only types are asked
    (no instance attribute is read: a proxy's ``__getattr__`` or a
    property would run the user's code inside the callback)."""
    kind = type(callable_)
    if kind is _FunctionType:
        return (callable_.__code__,)
    for _ in range(4):  # bound methods and partials, a few levels deep
        if kind is _MethodType:
            callable_ = callable_.__func__
        elif kind is _partial:
            callable_ = callable_.func
        else:
            break
        kind = type(callable_)
        if kind is _FunctionType:
            return (callable_.__code__,)
    if isinstance(callable_, type):
        found = []
        for name in ("__init__", "__new__"):
            function = getattr(callable_, name, None)
            function = getattr(function, "__func__", function)  # a staticmethod's
            if type(function) is _FunctionType:
                found.append(function.__code__)
        return found
    function = getattr(kind, "__call__", None)
    return (function.__code__,) if type(function) is _FunctionType else ()


def _callbacks(monitor):
    events = monitoring.events
    line_event = events.LINE
    leave_events = events.PY_RETURN | events.PY_YIELD
    traced_events = line_event | leave_events
    call_event = events.CALL
    function_type = _FunctionType
    method_type = _MethodType
    ignored = _engine._IGNORED
    self_loops = monitor.self_loops
    interrupt_lists = monitor.interrupts
    getframe = sys._getframe
    disable = monitoring.DISABLE
    enabled = monitor.enabled
    levels_noted = _engine.LEVELS_NOTED
    disabled = monitor.disabled
    sticky = monitor.sticky
    call_sites = monitor.call_sites
    disable_outside = monitor.disable_outside
    cool = monitor.cool
    disarm = monitor.disarm
    active = _engine._active
    hot = _engine._hot
    OWN, MUTED = _engine.OWN, _engine.MUTED
    bootstrap = _engine.THREAD_BOOTSTRAP
    thread_start = _engine.THREAD_START
    lib = _core.lib
    mp_line = lib.mp_bound_line
    mp_return = lib.mp_bound_return
    locked = _core.MODE == "abi"  # cffi releases the GIL around ABI-mode calls

    def follow(trace, code, frame, kind):
        """Give the code of a followed frame the local events it needs."""
        if kind == OWN:
            wanted = leave_events
        else:
            wanted = traced_events
        if kind != MUTED and trace.levels[-1] < trace.depth:
            wanted |= call_event
        if enabled.get(id(code), 0) & wanted != wanted:
            monitor.enable(code, wanted)

    def begin(code, frame, may_disable):
        trace = active.trace
        if trace is None or trace.done:
            if monitor.warm:
                cool()
            caller = frame.f_back
            if caller is not None and caller.f_code is bootstrap and code.co_name == "run":
                # A thread's run(): never disabled, since a later thread may be adopted.
                trace = _adopt(frame)
                if trace is None:
                    return None
            else:
                if not may_disable or code is thread_start or enabled.get(id(code), 0) & line_event:
                    return None
                return disable_outside(code)  # this thread runs no block
        if trace.is_thread:
            with trace.lock:
                return _begin(trace, code, frame, may_disable)
        return _begin(trace, code, frame, may_disable)

    def _begin(trace, code, frame, may_disable):
        if trace.done:
            return None
        kind = trace.enter(frame)
        if kind is not None:
            follow(trace, code, frame, kind)
            return None
        if enabled.get(id(code), 0) & line_event:
            trace.mute(frame)
            return None
        if not may_disable or code is thread_start:
            return None
        # Too deep, or not below any followed frame.  Disabled even if a
        # shallower frame may call it later: that frame's CALL event turns
        # it back on (on_call), so untraced calls cost one callback in all.
        return _disable(code)

    def _disable(code):
        key = id(code)
        if key in sticky:
            return None
        disabled.add(key)
        return disable

    def _adopt(frame):
        thread = threading.current_thread()
        for session in list(_engine._sessions):
            if session.driver == Driver.name:
                trace = session.adopt(thread, frame.f_back)
                if trace is not None:
                    return trace
        return None

    def on_start(code, offset):
        try:
            frame = getframe(1)
            trace = hot[0]
            if trace is None or frame.f_back is not trace.frames[-1]:
                return begin(code, frame, True)
            # A call from the innermost followed frame of the entering
            # thread's trace (_engine._hot): begin(), _begin() and follow() inlined.
            kind = trace.enter_child(frame, code)
            if kind is not None:
                level = trace.levels[-1]
                # The events a code needs follow from its kind and level:
                # one that started at this level with them all needs no
                # look-up (a code's local events only grow until the tool
                # goes idle, after every trace).
                if level < levels_noted and trace.noted[level] is code:
                    return None
                wanted = leave_events if kind == OWN else traced_events
                if level < trace.depth:
                    wanted |= call_event
                if enabled.get(id(code), 0) & wanted != wanted:
                    monitor.enable(code, wanted)
                if level < levels_noted:
                    trace.noted[level] = code
                return None
            if enabled.get(id(code), 0) & line_event:
                trace.mute(frame)
                return None
            if code is thread_start:
                return None
            return _disable(code)
        except Exception as e:
            _note(e)

    def on_resume(code, offset):
        try:
            begin(code, getframe(1), False)
        except Exception as e:
            _note(e)

    def on_throw(code, offset, exc):
        try:
            begin(code, getframe(1), False)
        except Exception as e:
            _note(e)

    def on_call(code, offset, callable_, arg0):
        # The code this frame is about to call may have been disabled: turn
        # it back on.  A call site of a global name whose callee's start
        # always fires is turned off instead, until the block ends (the
        # next block's events start afresh) or a restart: its next calls
        # cost nothing.
        if monitor.warm:  # a warm code outside any block (see _Monitor.cool)
            cool()
            return None
        if type(callable_) is function_type:  # the common case, no call made
            key = id(callable_.__code__)
            if key in disabled:
                restart_for((key,))
            elif key in sticky and offset in call_sites.get(id(code), ()):
                disarm(code, offset, callable_, getframe(1))
                return disable
            return None
        try:
            if type(callable_) is method_type:
                function = callable_.__func__
                if type(function) is function_type and id(function.__code__) in ignored:
                    return disable  # a block's own __exit__ (this site calls no other in this block)
            codes = _callee_codes(callable_)
            keys = [id(c) for c in codes if id(c) in disabled]
            if keys or not (codes or _EVENTS_STAY_ON):
                # 3.12, events off between blocks: what is disabled was too
                # deep in this block, and a C callable may call it back.
                if disabled:
                    restart_for(keys)
                return None
            # 3.13+: nothing to do for a C callable (code it calls back is
            # not restarted, see the module's docstring).
            if offset in call_sites.get(id(code), ()) and all(id(c) in sticky for c in codes):
                disarm(code, offset, callable_, getframe(1))
                return disable
        except Exception as e:
            _note(e)
        return None

    def restart_for(keys):
        try:
            with monitor.lock:
                if monitor.tool is not None:
                    monitor.restart(keys)
        except Exception as e:
            _note(e)

    def on_leave(code, offset, value):
        trace = hot[0]
        if trace is not None:  # (never a finished trace: see _engine._hot)
            frame = getframe(1)
            frames = trace.frames
            if frame is frames[-1]:
                # The common case (see on_start): ThreadTrace.leave of the
                # innermost followed frame of a trace that is no thread's, inlined.
                try:
                    frames.pop()
                    trace.levels.pop()
                    if trace.kinds.pop() != OWN:
                        mp_return()
                except Exception as e:
                    _note(e)
                return
        trace = active.trace
        if trace is None or trace.done:
            if monitor.warm:
                cool()
            return
        try:
            if trace.is_thread:
                with trace.lock:
                    if not trace.done:
                        trace.leave(getframe(1))
            else:
                trace.leave(getframe(1))
        except Exception as e:
            _note(e)

    if locked:

        def on_line(code, lineno):
            trace = active.trace
            try:
                if trace is not None and trace.is_thread:
                    with trace.lock:
                        if not trace.done:
                            mp_line(lineno)
                else:
                    mp_line(lineno)
            except OverflowError:  # a line number C cannot hold
                pass

    else:

        def on_line(code, lineno):
            try:
                mp_line(lineno)
            except OverflowError:  # a line number C cannot hold
                pass

    def on_line_psutil(code, lineno):
        on_line(code, lineno)
        _raise_interrupt()

    def _raise_interrupt():
        # What interrupted psutil inside the reading (Ctrl-C, a signal
        # handler's exception) belongs to the traced code.
        for interrupts in interrupt_lists:
            if interrupts:
                raise _engine.fresh(interrupts.pop(0))

    def on_line_warm(code, lineno):
        cool()  # (registered while warm: see _Monitor._choose_line_callback)

    def on_jump(code, offset, destination):
        # sys.settrace reports a backward jump to the same line as a new
        # execution of it; LINE does not (a one-line loop).
        if monitor.warm:
            cool()  # a warm one-line loop outside blocks
            return
        loops = self_loops.get(id(code))
        if loops is not None:
            line = loops.get(destination)
            if line is not None:
                on_line(code, line)

    return {
        "psutil LINE": on_line_psutil,
        "warm LINE": on_line_warm,
        events.JUMP: on_jump,
        events.LINE: on_line,
        events.CALL: on_call,
        events.PY_START: on_start,
        events.PY_RESUME: on_resume,
        events.PY_THROW: on_throw,
        events.PY_RETURN: on_leave,
        events.PY_YIELD: on_leave,
        events.PY_UNWIND: on_leave,
    }


def _idle_callbacks(monitor):
    """The global events' callbacks between blocks: as cheap as can be."""
    events = monitoring.events
    disable_outside = monitor.disable_outside
    thread_start = _engine.THREAD_START

    def on_start_idle(code, offset):
        # Kept on: what a later block needs to see start (a thread's run,
        # Thread.start).
        if code is thread_start or code.co_name == "run":
            return None
        return disable_outside(code)

    # C builtins that accept any arguments and return something else than
    # DISABLE (resumes and throws are never disabled; unwinds cannot be).
    return {
        events.PY_START: on_start_idle,
        events.PY_RESUME: _operator.is_,
        events.PY_THROW: slice,
        events.PY_UNWIND: slice,
    }


def _note(error):
    trace = _engine.active_trace()
    if trace is not None and trace.session.error is None:
        trace.session.error = error


class Driver(object):
    """The sys.monitoring driver of one session's entering thread."""

    name = "sys.monitoring"
    acquired = False
    problem = None
    interrupts = None  # the psutil meter's interrupt list (see _Monitor.acquire)

    def __init__(self, trace):
        self.trace = trace

    def claim(self):
        """Count this session in on the tool, events still off; False where
        every tool id is taken (use settrace then)."""
        meter = self.trace.session.meter
        if meter.name == "psutil":
            self.interrupts = meter.interrupts
        return _monitor.acquire(self, self.interrupts)

    def install(self, frame, record_root):
        """Start the events (after :meth:`claim`); ``frame`` is the root."""
        events = monitoring.events
        wanted = events.CALL | events.PY_RETURN | events.PY_YIELD
        if record_root:
            wanted |= events.LINE
        try:
            _monitor.enable(frame.f_code, wanted, start=True)
        except Exception as e:
            self.problem = _engine.refused("sys.monitoring", e)

    def uninstall(self):
        """Count the session out; returns a warning text when it could not trace."""
        if self.acquired:
            _monitor.release(self, self.interrupts)
        return self.problem

    def live(self):
        session = self.trace.session
        return self.acquired and session is not None and not session.ended


def after_fork_in_child():
    """The child abandons its parent's sessions: give the tool id back."""
    monitor = _monitor
    monitor.lock = threading.RLock()
    if monitor.tool is not None:
        monitor.users = set()
        try:
            monitor._uninstall()
        except Exception:
            pass
