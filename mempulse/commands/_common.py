"""What the commands share: one-line errors, output paths checked up front."""
import os
import sys

from mempulse._options import UsageError


def one_line(error):
    """``error``'s message on one line (its type's name if it has none)."""
    message = str(error).strip().replace("\n", " ")
    return message or type(error).__name__


def say(prog, message, kind="error"):
    """``prog: error: message`` on stderr; never raises (stderr may be gone)."""
    try:
        sys.stderr.write("%s: %s%s\n" % (prog, kind + ": " if kind else "", message))
        sys.stderr.flush()
    except Exception:
        pass  # nowhere left to say it


def usage_error(prog, error):
    """Say ``error`` in one line; the exit status of bad input (2)."""
    say(prog, one_line(error))
    return 2


def check_writable(path, what):
    """``path`` made absolute (the program may chdir), or UsageError if it cannot be written.

    ``None`` (not asked for) and ``"-"`` (stdout) come back as they are.
    """
    if path is None or path == "-":
        return path
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise UsageError("cannot write %s to %r: no such directory" % (what, path))
    # An existing file (/dev/stdout, say) may be writable in a directory that is not.
    target = path if os.path.exists(path) else directory
    if os.path.isdir(path) or not os.access(target, os.W_OK):
        raise UsageError("cannot write %s to %r" % (what, path))
    return path
