"""Ctrl-C during a traced run goes to the program, never into mempulse's machinery.

Python raises KeyboardInterrupt in whatever frame runs when SIGINT is
handled.  During a trace that is often one of mempulse's own: a trace
function (CPython then drops it), a sampler callback called from C (where
the exception cannot propagate), the tracer's ``__exit__`` (the result is
lost).  While the CLI runs a program whose SIGINT handler is Python's
default, this handler raises KeyboardInterrupt only in the program's own
frames; caught inside mempulse's machinery, it sends SIGINT again, so the
interrupt is raised as soon as the program's code runs again.  Once the
program has ended, an interrupt is only noted, for the CLI to end with it
after the report.
"""
import os
import signal
import time

try:
    from _thread import start_new_thread
except ImportError:  # Python 2
    from thread import start_new_thread

from mempulse._tracer import _PACKAGE_DIR

# mempulse files whose frames are part of the user's call, not of the trace:
# an interrupt may go through them (``@profile``'s wrapper, say).
_API_FILES = ("_profile.py", "_pytest_plugin.py", "_ipython.py", "_own_call.py")


class Interrupts(object):
    """The SIGINT handler of one CLI run; :meth:`install` it, then :meth:`uninstall`."""

    def __init__(self):
        self.run_frame = None  # the frame that runs the program's code
        self.running = False  # the program's code may be on the stack
        self.interrupted = False  # SIGINT came after the program ended
        self._previous = None
        self._resending = False

    def install(self, run_frame):
        """Take over SIGINT if the program would get Python's default handler."""
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return  # SIG_IGN, or a handler of the program's caller: left alone
        self.run_frame = run_frame
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: signals are not ours to handle
            self._previous = None

    def uninstall(self):
        """Give SIGINT back to Python's default handler."""
        self._resending = False
        if self._previous is not None and signal.getsignal(signal.SIGINT) == self._handle:
            signal.signal(signal.SIGINT, self._previous)
        self._previous = None

    def _handle(self, signum, frame):
        where = self._where(frame) if frame is not None else "program"
        if where in ("program", "sampler"):
            # In a psutil reading, the sampler keeps the interrupt and the
            # tracer raises it in the program's code right after the reading.
            self._resending = False
            raise KeyboardInterrupt
        if where == "mempulse" or self.running:
            self._resend()
        else:
            self._resending = False
            self.interrupted = True

    def _resend(self):
        """SIGINT again and again, until it is handled in the program's code.

        Sent from a bare thread (not a threading.Thread, which a trace
        would adopt): sent from the handler itself, it would be handled
        inside the handler, over and over.  Each signal is handled at the
        interpreter's next check, mostly still inside mempulse while a slow
        sampler runs, hence the short period.
        """
        if self._resending:
            return
        self._resending = True
        pid = os.getpid()

        def resend():
            while self._resending and self._previous is not None:
                os.kill(pid, signal.SIGINT)
                time.sleep(0.0002)

        start_new_thread(resend, ())

    def _where(self, frame):
        """"program", "sampler" (a psutil reading), "mempulse" (its machinery) or "cli"."""
        f = frame
        while f is not None and f is not self.run_frame:
            name = f.f_code.co_filename
            if name.startswith(_PACKAGE_DIR) and os.path.basename(name) not in _API_FILES:
                return "sampler" if os.path.basename(name) == "_samplers.py" else "mempulse"
            f = f.f_back
        if f is None or frame is self.run_frame:
            return "cli"
        return "program"
