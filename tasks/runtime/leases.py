"""Leases: what a live run uses, so that `clean` never removes it from under the run.

    <base>/leases/<run name>.lease     one line per cache entry (absolute path) the run uses, and
                                       its run folder; appended before the run looks at them
    <base>/leases/<run name>.lock      locked by the run for as long as it lives

A run holds a lease under each base it writes (the output root and the data dir: runs with
different output roots may share a data dir). `clean` (tasks/runtime/prune.py) keeps what the
leases of live runs name: a lease is live while its lock cannot be taken; the lock of a run that
ended or died (its process is gone, and the operating system released the lock with it) can be,
and `clean` then removes the lease.

Why this is enough: a run names an entry in its lease *before* it checks that the entry is
there, and `clean` reads the leases again *after* it has taken the entry's lock, just before it
removes the entry (`Leases.holds`). Either `clean` sees the name and keeps the entry, or it
removed the entry before the run checked it, and the run builds it again, under that same lock.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from filelock import FileLock, Timeout

LEASES = "leases"


def lease_dir(base: str | os.PathLike) -> Path:
    return Path(base) / LEASES


class Lease:
    """The leases of one live run, one per base; `add` names a path before the run uses it."""

    def __init__(self, name: str, bases: list[Path]) -> None:
        self.name = re.sub(r"[^0-9A-Za-z_.-]", "_", name).lstrip(".") or "run"  # a file name, never a path
        self.bases = list(dict.fromkeys(Path(b).resolve() for b in bases))
        self.locks: list[FileLock] = []
        self.named: set[str] = set()

    def __enter__(self) -> "Lease":
        for base in self.bases:
            d = lease_dir(base)
            d.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(d / f"{self.name}.lock"))
            lock.acquire()
            self.locks.append(lock)
            (d / f"{self.name}.lease").write_text("")  # empty: what it names is added as the run goes
        return self

    def __exit__(self, *exc: object) -> None:
        for base in self.bases:
            with contextlib.suppress(OSError):
                (lease_dir(base) / f"{self.name}.lease").unlink()
        for lock in self.locks:
            lock.release()
            with contextlib.suppress(OSError):
                Path(lock.lock_file).unlink()
        self.locks.clear()

    def add(self, *paths: str | os.PathLike) -> None:
        """Name `paths` (entries, the run folder) in the lease of the base each lies under; a path
        already named costs nothing. Appended (one write per call), so a lease of many entries
        costs what it names, not its square."""
        by_base: dict[Path, list[str]] = {}
        for path in paths:
            text = str(Path(path).resolve())
            if text in self.named:
                continue
            base = next((b for b in self.bases if Path(text).is_relative_to(b)), None)
            if base is None:
                continue
            by_base.setdefault(base, []).append(text)
            self.named.add(text)
        for base, texts in by_base.items():
            with open(lease_dir(base) / f"{self.name}.lease", "a") as fh:
                fh.write("".join(f"{t}\n" for t in texts))
                fh.flush()


class Leases:
    """What the live runs' leases under some bases name, read again when a lease file changes."""

    def __init__(self, bases: list[Path]) -> None:
        self.bases = list(dict.fromkeys(Path(b).resolve() for b in bases))
        self.seen: dict[Path, tuple[int, int]] = {}  # lease file -> (size, mtime_ns) when read
        self.paths: dict[Path, set[str]] = {}  # lease file -> the paths it names
        self.stale: set[Path] = set()  # leases of runs that ended or died

    def holds(self, path: str | os.PathLike) -> bool:
        """Does a live run's lease name `path`? (Reads changed lease files first.)"""
        self.refresh()
        text = str(Path(path).resolve())
        return any(text in named for named in self.paths.values())

    def refresh(self) -> None:
        files = [f for b in self.bases if lease_dir(b).is_dir() for f in lease_dir(b).glob("*.lease")]
        for f in set(self.paths) - set(files):
            self.paths.pop(f, None)
        for f in files:
            if f in self.stale:
                continue
            try:
                st = f.stat()
            except FileNotFoundError:
                self.paths.pop(f, None)
                continue
            if self.seen.get(f) == (st.st_size, st.st_mtime_ns):
                continue
            if not live(f):
                self.stale.add(f)
                self.paths.pop(f, None)
                continue
            self.seen[f] = (st.st_size, st.st_mtime_ns)
            try:
                self.paths[f] = {line for line in f.read_text().splitlines() if line}
            except OSError:
                self.paths[f] = set()

    def remove_stale(self) -> int:
        """Remove the leases (and lock files) of runs that ended or died; how many went."""
        self.refresh()
        gone = 0
        for f in list(self.stale):
            lock = FileLock(str(f.with_suffix(".lock")))
            try:
                with lock.acquire(timeout=0):
                    f.unlink(missing_ok=True)
                    gone += 1
            except (Timeout, OSError):
                continue
            with contextlib.suppress(OSError):
                f.with_suffix(".lock").unlink()
            self.stale.discard(f)
        return gone


def live(lease: Path) -> bool:
    """Is the run of `lease` alive (does a process hold its lock)?"""
    lock_file = lease.with_suffix(".lock")
    if not lock_file.exists():
        return False
    try:
        with FileLock(str(lock_file)).acquire(timeout=0):
            return False
    except Timeout:
        return True
    except OSError:  # cannot even try (a read-only leases dir): count it as live, keep what it names
        return True
