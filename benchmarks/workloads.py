"""The workloads a benchmark run times, and the memory each one starts with.

Each workload is a plain function plus its arguments; the tool adapters
(tools.py) wrap exactly that call and nothing else.  Resident memory that a
workload needs *before* it starts (the 2 GiB process of workload (c)) is made
by ``make_resident`` outside the timed section.

* ``numpy``: the original mempulse README's demo workload, traced at depth 1.
* ``loop``: ``for i in range(n): s += i`` -- about two line events per
  iteration, nothing else; the cost per line event is what it measures.
* ``loop-50M`` / ``loop-2G``: the same loop in a process that first made
  50 MiB / 2 GiB resident in 4 KiB pages, to show how a tracer's cost grows
  with the size of the process.
"""
import gc
import mmap
import uuid

MiB = 1 << 20
PAGE = 4096
MADV_POPULATE_WRITE = 23  # Linux; not in the mmap module


def loop(n):
    s = 0
    for i in range(n):
        s += i
    return s


def numpy_workload(scale):
    import numpy

    small = [1, 2, 3]
    large = list(range(int(1000000 * scale)))
    larger = [str(i) for i in large]
    uuids = [str(uuid.uuid4()) for _ in range(int(300000 * scale))]
    del large, larger
    total = 0.0
    for i in range(int(40 * scale) or 1):  # the numpy CPU-bound loop
        total += float(numpy.sqrt(numpy.arange(i, i + 2000000, dtype=numpy.float64)).sum())
    mean = float(numpy.ones(int(100 * 1000 * 1000 * scale)).mean())  # 800 MB of float64
    gc.collect()
    levels = allocate_levels(int(8 * scale) or 1)
    return len(small) + len(uuids) + int(total > 0) + int(mean) + len(levels)


def allocate_levels(n):
    # Multi-level allocations: each level allocates, then calls the next.
    if n == 0:
        return []
    block = bytearray(4 * MiB)
    return [block] + allocate_levels(n - 1)


class Workload(object):
    def __init__(self, name, title, function, resident=0, line_heavy=True):
        self.name = name
        self.title = title
        self.function = function
        self.resident = resident
        self.line_heavy = line_heavy


WORKLOADS = [
    Workload("numpy", "(a) original README numpy workload, depth 1", numpy_workload, line_heavy=False),
    Workload("loop", "(b) line-heavy loop `s += i`", loop),
    Workload("loop-50M", "(c') the loop, 50 MiB made resident first", loop, resident=50 * MiB),
    Workload("loop-2G", "(c) the loop, 2 GiB made resident first", loop, resident=2048 * MiB),
]
BY_NAME = dict((w.name, w) for w in WORKLOADS)


def make_resident(size):
    """Map ``size`` bytes anonymous, in 4 KiB pages, every page touched.

    MADV_NOHUGEPAGE keeps the kernel from backing it with 2 MiB pages (THP
    is in madvise mode here, but a process may run where it is "always"),
    so the process has ``size / 4096`` resident small pages -- what makes
    /proc/self/smaps_rollup slow.  Keep the returned object alive.
    """
    if not size:
        return None
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    _no_huge_pages(m, size)
    try:
        # MADV_POPULATE_WRITE (Linux 5.14+) faults every page in from the
        # kernel, twice as fast here as touching them from Python.
        m.madvise(MADV_POPULATE_WRITE)
    except (AttributeError, OSError):
        for offset in range(0, size, PAGE):
            m[offset] = 1
    return m


def _no_huge_pages(m, size):
    advice = getattr(mmap, "MADV_NOHUGEPAGE", 15)  # 15 on Linux
    if hasattr(m, "madvise"):  # Python 3.8+
        m.madvise(advice)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    address = ctypes.addressof(ctypes.c_char.from_buffer(m))
    if libc.madvise(address, size, advice) != 0:
        raise OSError(ctypes.get_errno(), "madvise(MADV_NOHUGEPAGE) failed")


def rss_bytes():
    """Resident set size now, from /proc/self/statm."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
