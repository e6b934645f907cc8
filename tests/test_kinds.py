"""Resident memory by kind, per line: anonymous, file-backed, shared memory.

Real memory of each kind: a 48 MiB private anonymous mapping, a 64 MiB file
read through a shared mapping page by page (file-backed), and POSIX shared
memory written page by page (shmem: ``multiprocessing.shared_memory`` where
it exists, else a /dev/shm file mapped MAP_SHARED).
"""
import gc
import mmap
import os
import sys
import tempfile

import pytest
from conftest import MiB, line_of, record_at, touched

import mempulse

# Every test here runs under each driver (sys.settrace; sys.monitoring on 3.12+).
@pytest.fixture(autouse=True)
def _collected():
    """Earlier tests' garbage is collected now, not inside this test's trace (PyPy)."""
    gc.collect()


pytestmark = [
    pytest.mark.usefixtures("driver"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kinds are measured on Linux"),
]

PAGE = mmap.PAGESIZE
PYPY = sys.implementation.name == "pypy" if hasattr(sys, "implementation") else False
KINDS = ("anon_increment", "file_increment", "shmem_increment")

try:  # multiprocessing.shared_memory's tracker process keeps a pipe open:
    # start it now, so the first test does not look like an fd leak.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
except ImportError:  # before 3.8
    pass


def touch_pages(view, size):
    """Read one byte of every page of a mapping; their sum."""
    total = 0
    for offset in range(0, size, PAGE):
        total += _byte(view[offset])  # no allocation per page (PyPy's GC would run)
    return total


_byte = ord if sys.version_info[0] == 2 else int  # mmap[i] is a str on Python 2


def write_pages(view, size):
    for offset in range(0, size, PAGE):
        view[offset:offset + 1] = b"\x01"


def kinds(record):
    return dict((name, getattr(record, name)) for name in KINDS)


def near(value, want, slack=4 * MiB):
    return want - slack <= value <= want + slack


def test_anonymous_memory_is_anon(tracer_class):
    # A private anonymous mapping: mapped, written and given back at once on
    # every interpreter (a bytearray's size and the time of its free vary:
    # PyPy's GC copies and frees on its own schedule).
    size = 48 * MiB
    results = []
    with tracer_class(results.append, 1):
        blob = touched(size)  # L:kinds-anon
        blob.close()  # L:kinds-anon-free
        done = True
    record = record_at(results[0], line_of("L:kinds-anon"))
    freed = record_at(results[0], line_of("L:kinds-anon-free"))
    assert near(record.anon_increment, size), kinds(record)
    assert abs(record.file_increment) < 2 * MiB and abs(record.shmem_increment) < 2 * MiB, kinds(record)
    assert near(freed.anon_increment, -size), kinds(freed)
    # The single execution is the whole net increment here.
    assert record.max_increment == record.increment


def test_a_mapped_file_read_in_full_is_file(tracer_class, tmpdir):
    size = 64 * MiB
    path = str(tmpdir.join("data.bin"))
    with open(path, "wb") as f:  # in the page cache, not yet in our mappings
        for _ in range(size // MiB):
            f.write(b"\x01" * MiB)
    fd = os.open(path, os.O_RDONLY)
    try:
        mapped = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        results = []
        with tracer_class(results.append, 1):
            total = touch_pages(mapped, size)  # L:kinds-file
            mapped.close()  # L:kinds-file-unmap
    finally:
        os.close(fd)
    assert total == size // PAGE
    record = record_at(results[0], line_of("L:kinds-file"))
    unmap = record_at(results[0], line_of("L:kinds-file-unmap"))
    assert near(record.file_increment, size), kinds(record)
    assert abs(record.shmem_increment) < 2 * MiB, kinds(record)
    if not PYPY:  # its GC gives heap back while the loop runs, on its own schedule
        assert abs(record.anon_increment) < 2 * MiB, kinds(record)
    assert near(unmap.file_increment, -size), kinds(unmap)


def shared_block(size):
    """(writable view, close) of fresh POSIX shared memory."""
    try:
        from multiprocessing import shared_memory
    except ImportError:  # before 3.8: the same thing by hand
        shared_memory = None
    if shared_memory is not None:
        block = shared_memory.SharedMemory(create=True, size=size)

        def close():
            block.close()
            block.unlink()

        return block.buf, close
    fd, path = tempfile.mkstemp(dir="/dev/shm")
    os.ftruncate(fd, size)
    mapped = mmap.mmap(fd, size, mmap.MAP_SHARED)
    os.close(fd)
    os.unlink(path)
    return mapped, mapped.close


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm")
def test_shared_memory_written_is_shmem(tracer_class):
    size = 32 * MiB
    view, close = shared_block(size)
    try:
        results = []
        with tracer_class(results.append, 1):
            write_pages(view, size)  # L:kinds-shmem
    finally:
        del view  # a memoryview must go before its block closes
        close()
    record = record_at(results[0], line_of("L:kinds-shmem"))
    assert near(record.shmem_increment, size), kinds(record)
    assert abs(record.anon_increment) < 2 * MiB and abs(record.file_increment) < 2 * MiB, kinds(record)


def test_a_loop_line_sums_kinds_and_keeps_its_largest_execution(tracer_class):
    results = []
    kept = []
    with tracer_class(results.append, 1):
        for size in (4, 24, 8):
            kept.append(touched(size * MiB))  # L:kinds-loop
    record = record_at(results[0], line_of("L:kinds-loop"))
    assert record.hits == 3
    assert near(record.increment, 36 * MiB)
    assert near(record.anon_increment, 36 * MiB), kinds(record)
    # The largest single execution is the 24 MiB one, not the net sum.
    assert near(record.max_increment, 24 * MiB, 2 * MiB), record
    for m in kept:
        m.close()


def test_kinds_reach_the_table_and_can_be_hidden(tracer_class):
    results = []
    with tracer_class(results.append, 1):
        blob = touched(20 * MiB)  # L:kinds-table
    blob.close()
    table = mempulse.format_trace_result(results[0])
    header = table.splitlines()[0]
    assert header.split()[-6:] == ["Anon", "(net)", "File", "(net)", "Shmem", "(net)"]
    row = [l for l in table.splitlines() if l.split()[0].endswith(":%d" % line_of("L:kinds-table"))]
    assert len(row) == 1
    anon = int(row[0].split()[-3].replace(",", ""))
    assert near(anon, 20 * MiB)
    assert "Anon" not in mempulse.format_trace_result(results[0], kinds=False)
