"""A full disk for a node process of the fault runs (on the path only of those processes).

When ``TONGBAN_TEST_DISK_ROOM_FILE`` names a file that exists, the filesystem store's writes
fail with ENOSPC, as the kernel fails them, once a file would grow past the number of bytes
the file holds; remove the file and there is room again.
"""

from __future__ import annotations

import errno
import os

_ROOM_FILE = os.environ.get("TONGBAN_TEST_DISK_ROOM_FILE", "")

if _ROOM_FILE:
    from tongban.storage.objects import _filesystem

    _write_all = _filesystem._write_all

    def _nearly_full(fd: int, data: memoryview) -> None:
        try:
            with open(_ROOM_FILE, encoding="ascii") as room_file:
                room = int(room_file.read().strip())
        except FileNotFoundError:
            room = -1
        if room >= 0 and os.fstat(fd).st_size + len(data) > room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        _write_all(fd, data)

    _filesystem._write_all = _nearly_full
