"""Process memory settings (postel.app.memory): the glibc arena limit holds for threads
started afterwards, and settling collects, trims and freezes start-up objects."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from postel.app.memory import limit_malloc_arenas, release_memory, settle

_ARENA_PROBE = """
import ctypes, sys, threading
from postel.app.memory import limit_malloc_arenas
if sys.argv[1] != "none":
    assert limit_malloc_arenas(int(sys.argv[1]))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
THREADS = 6
barrier = threading.Barrier(THREADS + 1)
done = threading.Event()
def work():
    libc.malloc(4096)  # a thread's first malloc attaches it to an arena
    barrier.wait()
    done.wait()
threads = [threading.Thread(target=work) for _ in range(THREADS)]
for thread in threads:
    thread.start()
barrier.wait()
HEAP = 64 << 20  # glibc's thread arena: a 64 MiB aligned anonymous reservation whose
maps = []  # start is read-write and whose rest is still inaccessible
for line in open("/proc/self/maps"):
    fields = line.split()
    if len(fields) == 5:
        start, end = (int(x, 16) for x in fields[0].split("-"))
        maps.append((start, end, fields[1]))
heaps = 0
for (start, end, mode), after in zip(maps, maps[1:] + [(0, 0, "")]):
    if mode != "rw-p" or start % HEAP:
        continue
    if end == start + HEAP or (after[0] == end and after[2] == "---p" and after[1] == start + HEAP):
        heaps += 1
done.set()
for thread in threads:
    thread.join()
print(heaps)
"""


def _thread_arenas(limit: str) -> int:
    """Arenas beyond the main one in a fresh process whose six threads all malloc."""
    done = subprocess.run(
        [sys.executable, "-c", _ARENA_PROBE, limit],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")


@glibc
def test_threads_share_the_limited_arenas() -> None:
    assert _thread_arenas("none") > 1  # unlimited: the probe sees one arena per thread
    assert _thread_arenas("1") == 0
    assert _thread_arenas("2") <= 1


@pytest.mark.parametrize("arenas", [0, -1])
def test_a_limit_below_one_is_refused(arenas: int) -> None:
    with pytest.raises(ValueError):
        limit_malloc_arenas(arenas)


@glibc
def test_release_memory_collects_and_trims() -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    for _ in range(1000):
        Cycle()
    release_memory()  # whether glibc had pages to return depends on the heap's shape
    assert not any(isinstance(o, Cycle) for o in gc.get_objects())


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_settle_freezes_what_start_up_made() -> None:
    kept = [[n] for n in range(10)]  # lists are tracked by the collector
    settle()
    assert gc.get_freeze_count() >= len(kept)
