"""Prefect record locks that die with their process, so a killed run never blocks the next one.

Prefect's FileSystemLockManager writes `<key>.lock` files with no expiry: a run killed while a
stage held its lock (SIGKILL, OOM, a closed laptop) would leave the file behind, and the next
run with the same config would wait for it for ever. Here each holder is tagged with the host
and pid that took the lock; a lock whose process is gone (on this host) is removed as stale.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Optional

from prefect.locking.filesystem import FileSystemLockManager

log = logging.getLogger(__name__)


def process_alive(pid: int) -> bool:
    """True if process `pid` exists and is not a zombie (unknown platforms: assume alive)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would signal the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class ProcessFileLockManager(FileSystemLockManager):
    """A FileSystemLockManager whose lock files name their process, and are dropped once it is gone."""

    def __init__(self, lock_files_directory: Path) -> None:
        super().__init__(lock_files_directory)
        self._prefix = f"{socket.gethostname()}:{os.getpid()}:"

    def _tag(self, holder: str) -> str:
        return holder if holder.startswith(self._prefix) else self._prefix + holder

    def _stale(self, holder: str) -> bool:
        """True for a holder 'host:pid:id' from this host whose process has ended."""
        parts = holder.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            return False
        return parts[0] == socket.gethostname() and not process_alive(int(parts[1]))

    def is_locked(self, key: str, use_cache: bool = False) -> bool:
        info = self._get_lock_info(key, use_cache=use_cache)
        if info is not None and self._stale(str(info.get("holder", ""))):
            log.warning("removing the stale lock %s left by a process that is gone (%s)", info["path"], info["holder"])
            Path(info["path"]).unlink(missing_ok=True)
            self._locks.pop(key, None)
            return False
        return super().is_locked(key, use_cache=use_cache)

    def acquire_lock(
        self, key: str, holder: str, acquire_timeout: Optional[float] = None, hold_timeout: Optional[float] = None
    ) -> bool:
        return super().acquire_lock(key, self._tag(holder), acquire_timeout, hold_timeout)

    async def aacquire_lock(
        self, key: str, holder: str, acquire_timeout: Optional[float] = None, hold_timeout: Optional[float] = None
    ) -> bool:
        return await super().aacquire_lock(key, self._tag(holder), acquire_timeout, hold_timeout)

    def release_lock(self, key: str, holder: str) -> None:
        super().release_lock(key, self._tag(holder))

    def is_lock_holder(self, key: str, holder: str) -> bool:
        return super().is_lock_holder(key, self._tag(holder))
