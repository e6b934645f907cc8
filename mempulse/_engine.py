"""The tracing engine: what a trace session knows, whichever driver feeds it.

A session is one entered tracer.  Each thread it traces has a
:class:`ThreadTrace`: the frames it follows (newest last), their levels and
kinds, and its own C tracer, bound to that thread so line events go straight
to C.  The drivers (``_settrace.py``, ``_sysmon.py``) only translate their
events into :meth:`ThreadTrace.enter` and :meth:`ThreadTrace.leave`; every
rule lives here:

- Levels: the frame that entered the tracer is the root, level 0; a frame
  started (or resumed) by the newest followed frame is one level deeper and
  traced while its level is at most the depth.  A generator or coroutine
  counts its level where it is resumed.
- mempulse's own frames (and ``threading.Thread.run``) are transparent: not
  recorded, and what they call keeps their level.  Code that the session's
  filter does not record (``include``/``exclude``, see ``_filters.py``) is
  transparent too, but never followed: a frame of recorded code whose
  caller is not followed is traced when only filtered frames separate it
  from a followed one (:meth:`ThreadTrace._enter_through`).  Decided once
  per code object (:class:`CodeNames`).
- Frames are matched by identity, never by position: a start whose caller
  is deeper in the stack, or a leave of a frame below the newest, first
  closes the frames above it (events lost to an exception inside a callback,
  a generator abandoned mid-way, a task cancelled across an ``await``).  So no
  event order makes the engine raise, and C sees a consistent stack.
- The root may leave and come back (a ``with`` block inside a generator or
  a coroutine across ``await``): its lines are recorded again when it resumes.
- Threads: a thread is traced only when a thread this session traces
  started it while the session ran; its trace ends when its ``run()``
  returns, or when the session ends, whichever is first.
- Fork: in a child, every session is abandoned (no trace, no callback, no
  file of the parent's); see :func:`_after_fork_in_child`.
"""
import os
import sys
import threading
import weakref

from mempulse import _core

try:
    from _thread import allocate_lock as _allocate_lock
except ImportError:  # Python 2
    from thread import allocate_lock as _allocate_lock

# Kinds of followed frames.
TRACED, OWN, MUTED = 1, 2, 3

# Code id of mempulse's own frames (C never sees it).
OWN_CODE = -1
# Code id of code the session's filter leaves out: never followed; a frame
# of recorded code below such frames is found by walking up to a followed
# one (ThreadTrace._enter_through), so filtered code costs nothing per line
# or call under sys.monitoring.
FILTERED_CODE = -2
# Code id of mempulse's functions that run while events still fire but
# call nothing of the user's (a tracer's __exit__ before it uninstalls the
# driver): not followed, so what they call costs no engine work, and
# sys.monitoring disables their start for good.
IGNORED_CODE = -3
_IGNORED = {}  # id(code) -> code


def ignore(function):
    """Never follow ``function``'s frames (see IGNORED_CODE); returns it."""
    code = _code_of(function)
    _IGNORED[id(code)] = code
    return function

# Readings closer together than this are skipped (csrc/tracer.c says why
# memory cannot move much faster; the README states the accuracy bound).
PERIOD_NS = 50000


def _package_dir():
    return os.path.join(os.path.dirname(_package_dir.__code__.co_filename), "")


#: Frames of code under this directory are mempulse's own, never recorded.
PACKAGE_DIR = _package_dir()


def _code_of(function):
    function = getattr(function, "__func__", function)
    return function.__code__


THREAD_RUN = _code_of(threading.Thread.run)
THREAD_START = _code_of(threading.Thread.start)
_bootstrap = getattr(threading.Thread, "_bootstrap_inner", None) or getattr(
    threading.Thread, "_Thread__bootstrap_inner"
)
THREAD_BOOTSTRAP = _code_of(_bootstrap)

# The bottom of every stack: a started frame whose caller is this one is
# never followed (nothing's f_back is this object).
_BOTTOM = object()

class _Active(threading.local):
    """The thread's innermost ThreadTrace (the one its events go to), as .trace."""

    trace = None  # a plain attribute read: the drivers' callbacks read it per event


_active = _Active()

# The entering thread's trace activated last, or None: a hint for the
# sys.monitoring driver, whose events carry no thread.  A frame whose caller
# is this trace's innermost followed frame runs on that trace's thread, so
# its events skip the thread-local lookup.  Cleared before the trace is
# done, so it is never a finished one.
_hot = [None]

# Sessions running in this process, for fork handling and thread adoption.
_sessions = set()


def refused(interface, error):
    """The warning when ``interface`` would not start tracing: on 3.13 an
    OverflowError once the process has spent CPython's 2**24 - 1 changes of
    monitoring events (every tool's set_events and each sys.settrace on or
    off count)."""
    return "mempulse: %s refused to trace (%s: %s); nothing was recorded" % (interface, type(error).__name__, error)


def fresh(interrupt):
    """An interrupt caught inside a reading, made to look raised where it is raised again.

    Its traceback and context are the sampler's (psutil's frames), which the
    program would never have shown.
    """
    interrupt.__traceback__ = None
    interrupt.__context__ = None
    interrupt.__suppress_context__ = True
    return interrupt


def code_is_start(frame):
    return frame.f_code is THREAD_START


def _stale(trace):
    session = trace.session
    if trace.done or session is None or session.ended:
        return True
    if not _HAVE_AT_FORK and session.pid != current_pid():
        _abandon_in_child(session)  # 2.7/3.6: a forked child finds out here
        return True
    return False


def _abandon_in_child(session):
    session.ended = session.forked = True
    _hot[0] = None
    for trace in [session.main] + list(session.threads):
        if trace is not None:
            trace.done = True


_HAVE_AT_FORK = hasattr(os, "register_at_fork")
_pid = [os.getpid()]


def current_pid():
    """os.getpid(), without its system call where a fork hook keeps it current."""
    if _HAVE_AT_FORK:
        return _pid[0]
    return os.getpid()


def active_trace():
    """This thread's current :class:`ThreadTrace`, or None.

    A trace left behind (its session ended without it being deactivated: an
    interrupt inside ``__exit__``) is dropped here, and the thread's events
    go back to the trace it stepped in front of, if that one still runs.
    """
    trace = _active.trace
    if trace is None or not _stale(trace):
        return trace
    while trace is not None and _stale(trace):
        trace = trace.outer
    _active.trace = trace
    if _core.loaded():
        _bind(trace)
    return trace


def _bind(trace):
    """Send the calling thread's events to ``trace``'s C tracer (None: nowhere).

    Under the trace's lock, as :meth:`ThreadTrace.free` frees: another
    thread may free it at any moment (the entering thread, as the session
    ends).  A C tracer bound before it is freed lives on until this thread
    unbinds; bound after, it is freed memory, written to and freed again at
    this thread's exit.  Returns False when it was freed (nothing bound).
    """
    lib = _core.lib
    if trace is None:
        lib.mp_bind(_core.ffi.NULL)
        return True
    with trace.lock:
        c = trace.c
        lib.mp_bind(c if c is not None else _core.ffi.NULL)
    return c is not None


class CodeNames(object):
    """Code ids of one session, or of several whose records are merged in C.

    ``code_filter`` (see :mod:`mempulse._filters`) is asked once per code
    object: code it does not record is transparent, like mempulse's own.
    A table keeps each code object it names alive, so that its id is not
    reused meanwhile; ``weak``: it keeps weak references instead, and an id
    is forgotten as its code dies (the table shared by sessions, see
    :func:`shared_code_names`).
    """

    full = False  # too big to be shared any longer (see shared_code_names)

    def __init__(self, code_filter=None, weak=False):
        self.code_filter = code_filter
        self.lock = threading.Lock()
        self.code_ids = {}  # id(code object) -> code id (OWN_CODE for ours)
        self.codes = [] if not weak else {}  # what keeps the ids valid
        self.names = []  # id -> (filename, function)
        self.name_ids = {}

    def code_id(self, code, frame=None):
        # Known codes without the lock: entries are added and dropped whole.
        code_id = self.code_ids.get(id(code))
        if code_id is not None:
            return code_id
        with self.lock:
            code_id = self.code_ids.get(id(code))
            if code_id is not None:
                return code_id
            if id(code) in _IGNORED:
                code_id = IGNORED_CODE
            elif code.co_filename.startswith(PACKAGE_DIR) or code is THREAD_RUN:
                code_id = OWN_CODE
            elif self._filtered(code, frame):
                code_id = FILTERED_CODE
            else:
                key = (code.co_filename, code.co_name)
                code_id = self.name_ids.get(key)
                if code_id is None:
                    code_id = self.name_ids[key] = len(self.names)
                    self.names.append(key)
            # By identity: equal code objects (two dataclasses' generated
            # __init__, copies made by other tools) may come from other files.
            self.code_ids[id(code)] = code_id
            if len(self.names) > _SHARED_LIMIT or len(self.code_ids) > _SHARED_LIMIT:
                self.full = True  # if shared: replaced by a fresh table (shared_code_names)
            codes = self.codes
            if type(codes) is list:
                codes.append(code)  # keeps ids from being reused meanwhile
            else:
                key = id(code)

                def forget(ref, key=key, code_ids=self.code_ids):
                    # At the code's deallocation, before its id can be
                    # reused; no lock (it may run inside code_id itself).
                    code_ids.pop(key, None)
                    codes.pop(key, None)

                codes[key] = weakref.ref(code, forget)
            return code_id

    def _filtered(self, code, frame):
        code_filter = self.code_filter
        if code_filter is None:
            return False
        module = frame.f_globals.get("__name__") if frame is not None else None
        try:
            return not code_filter.records(code, module)
        except Exception:  # an odd filename or module name: recorded, never an error
            return False


# The code-id table of sessions without a filter of their own, shared so a
# block does not name its code objects again; replaced by a fresh one when
# this big (names of code that died are never forgotten).
_SHARED_LIMIT = 20000
shared_names = [None]
# CPython frees a code object (and calls its weak references' callbacks)
# before its memory, so its id, can be reused; elsewhere (PyPy) ids may be
# reused before the callbacks run, so each session names its own code.
# (Not the platform module: a fifth of mempulse's import time.  2.7 has no
# sys.implementation.)
_WEAK_CODES = (
    sys.implementation.name == "cpython" if hasattr(sys, "implementation") else "__pypy__" not in sys.builtin_module_names
)


def shared_code_names():
    """The process's shared :class:`CodeNames` (no filter), or a new private one where ids may be reused."""
    if not _WEAK_CODES:
        return CodeNames()
    names = shared_names[0]
    if names is None or names.full:
        names = shared_names[0] = CodeNames(weak=True)
    return names


class Session(object):
    """One entered tracer: its threads, names, meter and the ``ended`` gate.

    ``lock`` guards what several threads share: the thread list, ``ended``
    (the code-id tables have their own, :class:`CodeNames`).  Each thread's
    C tracer is written only by that thread, except that the entering
    thread finishes and merges them on exit, under the thread's own lock
    (see :class:`ThreadTrace`).
    """

    # Until set otherwise (most sessions never do).
    error = None  # first failure in another thread, raised on exit
    main = None
    driver = None
    forked = False
    interrupted = False  # an interrupt was raised from a trace function
    warnings = ()  # texts to say on exit (a list once one is added)
    # Made when the first thread is started or adopted (most blocks start none):
    threads = ()  # ThreadTrace of every thread but the entering one
    children = frozenset()  # ids of Thread objects started by traced threads

    def __init__(self, tracer, meter, depth, steps_aside, names):
        self.tracer = tracer
        self.meter = meter
        self.depth = depth
        self.steps_aside = steps_aside  # an own-call trace: a user tracer may nest
        self.lock = _allocate_lock()
        self.ended = False
        self.pid = _pid[0] if _HAVE_AT_FORK else os.getpid()
        # Shared with other sessions when their records are merged (Profile).
        self.code_names = names
        self.code_ids = names.code_ids  # id(code object) -> code id (OWN_CODE for ours)
        self.codes = names.codes
        self.names = names.names  # id -> (filename, function)

    def warn(self, text):
        """Say ``text`` on exit (a RuntimeWarning and the result's metadata)."""
        self.warnings = list(self.warnings) + [text]

    # -- names ---------------------------------------------------------------
    def code_id(self, code, frame=None):
        """Small int naming (filename, function); one per distinct pair."""
        return self.code_names.code_id(code, frame)

    def failure(self, status, os_errno):
        """The exception for a C failure: the sampler's own, if it raised one."""
        failure = self.meter.pending_exception()
        if failure is not None:
            return failure
        message = "mempulse: tracing failed: %s" % _core.strerror(status)
        if os_errno:
            return OSError(os_errno, message)
        return RuntimeError(message)

    # -- threads ---------------------------------------------------------------
    def note_thread_start(self, frame):
        """A traced thread runs ``Thread.start``: that thread may be adopted."""
        thread = frame.f_locals.get("self")
        if thread is not None:
            with self.lock:
                if not self.ended:
                    if not self.children:
                        self.children = set()
                    self.children.add(id(thread))

    def adopt(self, thread, root):
        """A ThreadTrace for ``thread`` (the calling thread, about to run), or None.

        Only threads that a traced thread started during this session are
        adopted, and only while it runs.
        """
        with self.lock:
            if self.ended or id(thread) not in self.children:
                return None
            self.children.discard(id(thread))
            try:
                trace = ThreadTrace(self, root, False, thread=True)
                trace.start()
            except Exception as e:  # reported on exit, never in the thread
                if self.error is None:
                    self.error = e
                return None
            self.threads = self.threads + (trace,)  # replaced whole: read without the lock
        # The session may end from here on, and free the trace: then the
        # thread runs untraced.
        if not trace.activate():
            return None
        return trace

    def end(self):
        """Close the gate: no thread adopts or records anything from now on."""
        if self.ended and not self.children:
            return  # (a plain read: once ended, nothing adds children)
        with self.lock:
            self.ended = True
            self.children = frozenset()


LEVELS_NOTED = 32


class ThreadTrace(object):
    """One thread's share of a session: followed frames and its C tracer.

    ``enter``/``leave`` are called by the thread itself.  ``lock`` is taken
    by the drivers around events of threads other than the entering one,
    since the entering thread finishes and frees their C tracers on exit,
    and around every bind (:func:`_bind`).
    """

    def __init__(self, session, root, record_root, thread=False):
        self.session = session
        self.depth = session.depth
        self.root = root
        self.is_thread = thread
        self.done = False
        self.lock = _allocate_lock()
        self.outer = None  # the trace this one stepped in front of, if any
        lib = _core.lib
        if _mp_call is None:
            _bind_events(lib)
        c = lib.mp_tracer_make(session.meter.c, PERIOD_NS)
        if not c:
            self.c = None
            raise MemoryError("mempulse: %s" % _core.strerror(lib.MP_ENOMEM))
        self.c = c
        root_code = OWN_CODE
        if record_root:
            root_code = max(self._code_id_of(root), OWN_CODE)  # filtered: transparent
        self.root_code = root_code
        self.root_kind = root_kind = OWN if root_code == OWN_CODE else TRACED
        self.frames = [_BOTTOM, root]
        self.levels = [0, 0]
        self.kinds = [OWN, root_kind]
        # For the sys.monitoring driver: per level below LEVELS_NOTED, the
        # code that last started there with its local events all set
        # (levels never exceed the depth).
        self.noted = [None] * min(self.depth + 1, LEVELS_NOTED)

    def begin(self):
        """The entering thread's start: the C tracer's first reading (the
        baseline of the first line), then the thread's events go here.

        Its last step before events flow, so the reading is not of
        mempulse's own setup.  On failure nothing is bound, and the caller
        frees the trace.
        """
        lib = _core.lib
        # One C call: start, bind to this thread, push the root if traced
        # (root_code is OWN_CODE, < 0, otherwise).  No lock: only this
        # thread frees the entering thread's trace.
        status = lib.mp_begin(self.c, self.root_code)
        if status != 0:
            raise self.session.failure(status, lib.mp_error_errno(self.c))
        _active.trace = self
        _hot[0] = self

    def start(self):
        """Start an adopted thread's C tracer (its first reading); see :meth:`activate`."""
        lib = _core.lib
        status = lib.mp_start(self.c)
        if status != 0:
            raise self.session.failure(status, lib.mp_error_errno(self.c))

    def activate(self):
        """Make this (adopted thread's) trace the calling thread's: its events go to this C tracer.

        Returns False, binding nothing, when the C tracer was freed already
        (the session ended meanwhile); under the lock, see :func:`_bind`.
        """
        if not _bind(self):
            return False
        # Bound before any free: the C tracer lives on while bound.
        if self.root_kind == TRACED:
            _mp_call(self.root_code)
        _active.trace = self
        return True

    # -- events --------------------------------------------------------------
    def enter(self, frame):
        """``frame`` starts or resumes; returns its kind, or None if not followed."""
        frames = self.frames
        parent = frame.f_back
        if parent is not frames[-1]:
            if frame is self.root:
                return self._resume_root()
            if frame in frames:
                # Resumed while we thought it ran: its leave was lost.
                self._unwind_above(frame)
                return self.kinds[-1]
            if parent not in frames:
                if code_is_start(frame):
                    self.session.note_thread_start(frame)
                if self.session.code_names.code_filter is not None:
                    return self._enter_through(frame, parent)
                return None
            self._unwind_above(parent)
        return self.enter_child(frame, frame.f_code)

    def enter_child(self, frame, code):
        """``frame``, running ``code``, starts and its caller is the innermost
        followed frame: :meth:`enter` without the checks of its caller.

        For drivers that know both already (a frame's attributes are read
        through generic descriptors, each costing a few hundred
        instructions).
        """
        level = self.levels[-1]
        code_id = self.session.code_ids.get(id(code))
        if code_id is None:
            code_id = self.session.code_id(code, frame)
        if code_id < OWN_CODE:  # filtered out, or ignored
            return None
        if code_id == OWN_CODE:
            self.frames.append(frame)
            self.levels.append(level)
            self.kinds.append(OWN)
            return OWN
        if level >= self.depth:
            if code is THREAD_START:
                self.session.note_thread_start(frame)
            return None
        self.frames.append(frame)
        self.levels.append(level + 1)
        self.kinds.append(TRACED)
        _mp_call(code_id)
        if code is THREAD_START:
            self.session.note_thread_start(frame)
        return TRACED

    def _enter_through(self, frame, parent):
        """A frame of recorded code whose caller is not followed: traced when a
        followed frame is reached through filtered frames only, one level
        below it, since those are transparent."""
        code_id = self._code_id_of(frame)
        if code_id < 0:
            return None
        frames = self.frames
        found = parent
        while found is not None and found not in frames:
            if self._code_id_of(found) != FILTERED_CODE:
                # Recorded code that is not followed (too deep), or
                # mempulse's own frames outside the followed ones.
                return None
            found = found.f_back
        if found is None:
            return None
        self._unwind_above(found)
        level = self.levels[-1]
        if level >= self.depth:
            return None
        frames.append(frame)
        self.levels.append(level + 1)
        self.kinds.append(TRACED)
        _mp_call(code_id)
        return TRACED

    def _code_id_of(self, frame):
        code_id = self.session.code_ids.get(id(frame.f_code))
        if code_id is None:
            code_id = self.session.code_id(frame.f_code, frame)
        return code_id

    def mute(self, frame):
        """``frame`` runs traced code where it is not traced: drop its lines.

        (sys.monitoring enables LINE per code object, not per frame.)
        """
        self.frames.append(frame)
        self.levels.append(self.depth)
        self.kinds.append(MUTED)
        _mp_call(-1)

    def leave(self, frame):
        """``frame`` returns, yields or is left by an exception.

        Returns True when this was a thread's ``run()`` returning: the
        thread's trace is then finished.
        """
        frames = self.frames
        if frame is not frames[-1]:
            if frame not in frames:
                return False
            self._unwind_above(frame)
        frames.pop()  # _pop(), inlined: once per followed call
        self.levels.pop()
        if self.kinds.pop() != OWN:
            _mp_return()
        if self.is_thread and len(frames) == 2:
            # The thread's run() returned (the driver holds the lock).
            self._finish()
            self.deactivate()
            return True
        return False

    def _pop(self):
        self.frames.pop()
        self.levels.pop()
        if self.kinds.pop() != OWN:
            _mp_return()

    def _unwind_above(self, frame):
        frames = self.frames
        while frames[-1] is not frame and len(frames) > 1:
            self._pop()

    def _resume_root(self):
        # Everything above the bottom is stale: the root left (yield/await)
        # and its leave may have been lost.
        frames = self.frames
        while len(frames) > 1:
            self._pop()
        frames.append(self.root)
        self.levels.append(0)
        self.kinds.append(self.root_kind)
        if self.root_kind == TRACED:
            _mp_call(self.root_code)
        return self.root_kind

    # -- ending ----------------------------------------------------------------
    def _finish(self):  # lock held, or the thread is the session's entering one
        if not self.done:
            if _hot[0] is self:
                _hot[0] = None  # the hint is never a finished trace
            self.done = True
            if self.c is not None:
                _core.lib.mp_finish(self.c)

    def deactivate(self):
        """Stop sending this thread's events here; the outer trace (if any) resumes."""
        if _hot[0] is self:
            _hot[0] = None
        if _active.trace is self:
            outer = self.outer
            _active.trace = outer
            _bind(outer)  # freed meanwhile (another thread's session ended): nothing bound

    def release(self):
        """:meth:`deactivate`, then :meth:`free`, each whatever the other does
        (the free unbinds the calling thread from the C tracer: no outer
        trace, no bind of its own)."""
        try:
            if _hot[0] is self:
                _hot[0] = None
            if _active.trace is self:
                outer = self.outer
                _active.trace = outer
                if outer is not None:
                    _bind(outer)
        finally:
            self.free()

    def free(self):
        """Release the C tracer and every frame reference."""
        if _hot[0] is self:
            _hot[0] = None
        with self.lock:
            self.done = True
            c = self.c
            if c is not None:
                self.c = None
                _core.lib.mp_tracer_free(c)
        # In place: drivers' closures hold these lists (and frames hold
        # those closures as f_trace), so a new list would leave a cycle.
        del self.frames[1:], self.levels[1:], self.kinds[1:]
        self.root = None
        self.outer = None


# The core's bound-thread events, module globals for the hot paths (the
# core is loaded when the first trace is made: _bind_events).
_mp_call = _mp_return = None


def _bind_events(lib):
    global _mp_call, _mp_return
    _mp_call, _mp_return = lib.mp_bound_call, lib.mp_bound_return


# A set's add and discard are atomic (the GIL, or the set's own lock on
# free-threaded builds); readers iterate a copy (list(_sessions)).
register = _sessions.add
unregister = _sessions.discard


def _after_fork_in_child():
    """A forked child traces nothing: its parent's sessions are abandoned.

    The child keeps running the traced code, so every session is marked
    ended (the drivers' functions then detach at their next event), locks
    another thread may have held at fork are replaced, and this thread's
    events go nowhere.  The C core reopens its own /proc files (pid check).
    """
    _pid[0] = os.getpid()
    for session in list(_sessions):
        session.lock = threading.Lock()
        session.code_names.lock = threading.Lock()
        session.ended = True
        session.forked = True
        for trace in [session.main] + list(session.threads):
            if trace is not None:
                trace.lock = threading.Lock()
                trace.done = True
    _sessions.clear()
    shared_names[0] = None  # its lock may be held by a thread that is gone
    _active.trace = None
    _hot[0] = None
    if _core.loaded():
        _core.lib.mp_bind(_core.ffi.NULL)
    from mempulse import _settrace, _sysmon

    _settrace.after_fork_in_child()
    _sysmon.after_fork_in_child()


if hasattr(os, "register_at_fork"):  # 3.7+; 2.7/3.6 rely on pid checks
    os.register_at_fork(after_in_child=_after_fork_in_child)
