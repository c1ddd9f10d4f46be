"""Process memory settings of a postel process (the main one and each port-25 worker of
``[smtp] processes``, docs/adr/0005).

glibc's malloc gives each thread that allocates concurrently an arena of its own, up to
8 per core; a postel process has several threads that allocate (the store's writer and
reader pool, the DKIM runner, executors), and each arena keeps the memory it once held.
``limit_malloc_arenas`` caps them at process start; ``settle`` then hands back what
start-up left free and moves the objects that live as long as the process out of the
garbage collector's generations. The C library's parts are skipped where it is not
glibc.
"""

from __future__ import annotations

import ctypes
import gc

__all__ = ["MALLOC_ARENAS_MAX", "M_ARENA_MAX", "limit_malloc_arenas", "release_memory", "settle"]

M_ARENA_MAX = -8
"""glibc ``mallopt`` parameter number of the arena limit (malloc.h)."""
MALLOC_ARENAS_MAX = 2
"""Arenas per postel process: the event loop's thread has the first, the store's and the
executors' threads share the second. Postel policy: it bounds what idle arenas keep
(without it glibc made 5 per process under SMTP load; docs/adr/0005, Memory)."""


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (it has ``mallopt`` and ``malloc_trim``);
    looked up among the symbols already loaded, without running ``ldconfig``."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    return libc


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS_MAX) -> bool:
    """Cap glibc's malloc arenas of this process at ``arenas`` (>= 1); call it before the
    process starts threads (arenas made earlier stay). Whether the limit was set (False
    off glibc).

    Raises:
        ValueError: ``arenas`` < 1.

    Spec: glibc manual §3.2.3.10 "Malloc Tunable Parameters" (M_ARENA_MAX)
    """
    if arenas < 1:
        raise ValueError(f"arenas must be >= 1, not {arenas}")
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(arenas)))


def release_memory() -> bool:
    """Collect garbage, then return the C heap's free pages to the kernel
    (``malloc_trim``). Whether glibc released any memory (False off glibc).

    Spec: glibc malloc_trim(3)
    """
    gc.collect()
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(ctypes.c_size_t(0)))


def settle() -> None:
    """Once a process has started serving: ``release_memory``, then freeze the objects
    made so far (modules, configuration, services) so that later collections do not
    scan them again (``gc.freeze``).

    Spec: Python docs, gc.freeze
    """
    release_memory()
    gc.freeze()
