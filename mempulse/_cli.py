"""The ``mempulse`` command (and ``python -m mempulse``): which command runs.

- ``mempulse report FILE ...``: render a saved result (:mod:`mempulse.commands.report`);
- ``mempulse run [options] script.py ...``: trace a program and save its
  result (:mod:`mempulse.commands.run`);
- anything else, ``mempulse [options] script.py ...``: ``run``'s shorthand,
  which keeps mempulse 1.0's options (``-o`` is the table's file) and saves
  no file unless asked (``--json``).

Only the first argument names a command, so a script named ``report`` or
``run`` runs with ``mempulse run report`` (or ``mempulse ./report``).
"""
import sys

COMMANDS = ("run", "report")


def main(argv=None, prog="mempulse"):
    """Entry point of ``mempulse`` and ``python -m mempulse``; returns the exit status."""
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "report":
        from mempulse.commands import report

        return report.main(argv[1:], prog + " report")
    from mempulse.commands import run

    if argv and argv[0] == "run":
        return run.main(argv[1:], prog + " run")
    return run.main(argv, prog, shorthand=True)
