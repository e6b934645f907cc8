"""A small program to try the command line on:

    python -m mempulse examples/cli_demo.py
    python -m mempulse --depth 2 --sort increment --min-increment 1MiB examples/cli_demo.py
"""
import sys


def load(n):
    blocks = [bytearray(1 << 20) for _ in range(n)]
    return blocks


def text_of(count):
    return ",".join(str(i) for i in range(count))


blocks = load(64)
text = text_of(1000000)
del blocks
if __name__ == "__main__":
    print("%d characters" % len(text))
    sys.exit(0)
