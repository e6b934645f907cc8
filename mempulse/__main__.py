"""``python -m mempulse [options] script.py [args ...]`` (see mempulse/_cli.py)."""
import sys


def _core_or_exit(prog):
    # From a source checkout without a compiled core, say what to do in one
    # line (status 2, like any usage error) before the program would run.
    # (Importing the package may itself load the core and raise it.)
    try:
        from mempulse import _core

        _core.load()
    except ImportError as e:
        if type(e).__name__ != "CoreMissing":
            raise
        sys.stderr.write("%s: error: %s\n" % (prog, e))
        sys.exit(2)


if __name__ == "__main__":
    if sys.argv[1:2] not in (["-h"], ["--help"], ["--version"]):
        _core_or_exit("python -m mempulse")
    from mempulse._cli import main

    sys.exit(main(prog="python -m mempulse"))
