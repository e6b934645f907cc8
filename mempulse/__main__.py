"""``python -m mempulse [options] script.py [args ...]`` (see mempulse/_cli.py)."""
import sys

from mempulse._cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m mempulse"))
