"""Keep large, short-lived buffers from pinning memory.

glibc raises its mmap threshold after a large block is freed, so the next large blocks
(argon2id's 64 MiB per password hash) come from heap arenas that are never returned to
the system: a burst of logins leaves the server hundreds of MB larger for good. Fixing
the threshold at 1 MiB keeps such blocks in their own mappings, released when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3


def release_large_blocks() -> bool:
    """Fix glibc's mmap threshold (a no-op elsewhere). True if it was set."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 20))
    except (OSError, AttributeError):
        return False
