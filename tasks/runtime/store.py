"""Where stage outputs live: content-addressed directories, atomic writes, verified manifests.

Layout under a base directory (the data dir for `generate`, the output root for the rest):

    <base>/cache/<stage>/<key>/            one finished stage output; exists only with its manifest
        <files...>
        manifest.json                      written last: files + sha256, what went into the key
    <base>/cache/<stage>/latest.json       the last entry used, and the key inputs of the 16 most recent (to explain changes)
    <base>/cache/<stage>/.tmp-<key>-<rand>/  work in progress, renamed into place when complete
    <base>/locks/<stage>-<key>.lock        one writer per entry at a time

A directory is published by one `os.replace` of a complete temp directory, so a reader sees
either nothing or a finished entry, and two runs computing the same entry never mix files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict

from tasks.errors import InputError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def _file_mode() -> int:
    """The mode `open()` gives a new file under the current umask (0644 under the usual 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()  # read once, at import: os.umask can only be read by setting it


# --------------------------------------------------------------------------- atomic files


# A temp file is named .<name>~<host>~<pid>~<random>.tmp: a later run on the same host can tell
# one whose writer died (sweep_temp_files) from one a live writer is still filling.
_HOST = re.sub(r"[^0-9A-Za-z_.-]", "_", socket.gethostname())[:64] or "host"
_TEMP = re.compile(r"\.(?P<name>.+)~(?P<host>[^~]+)~(?P<pid>\d+)~[0-9a-z_]+\.tmp")
# temp files of earlier versions: .<name>.<random>.tmp (mkstemp) and .<name>.tmp<pid> (a hard link or copy)
_OLD_TEMP = re.compile(r"\..+\.(?:[0-9a-z_]{8}\.tmp|tmp(?P<pid>\d+))")
STALE_AFTER_S = 24 * 3600.0  # another host's temp file this old has no live writer
OLD_STALE_AFTER_S = 3600.0  # nor has an earlier version's (no atomic write takes an hour)


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temp file name beside `path`, created empty with mode FILE_MODE."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}~{_HOST}~{os.getpid()}~", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, FILE_MODE)  # the mode of any new file, not mkstemp's private 0600
    return Path(tmp)


def with_path(exc: OSError, path: str | os.PathLike) -> OSError:
    """`exc` naming `path` when it names no file (a full disk's write error names none): same
    type, errno and message."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it into place, else remove it.

    An OSError raised inside (a full disk, ...) names `path` if it named no file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise with_path(exc, path) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file + fsync + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """An independent copy of `src` at `dst`, replacing `dst` atomically: a clone sharing the
    blocks until either is written where the file system can (FICLONE: btrfs, XFS, ...), else a
    plain copy. Never a hard link: a write through `dst` (editing a run folder's model.pt) must not
    reach `src` (the cache entry, the champion)."""
    with atomic_path(dst) as tmp:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            if not _clone(fin.fileno(), fout.fileno()):
                shutil.copyfileobj(fin, fout, 1 << 20)
    return Path(dst)


_FICLONE = 0x40049409  # linux/fs.h


def _clone(src_fd: int, dst_fd: int) -> bool:
    """Reflink dst to src (Linux FICLONE); False where the file system or platform cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import fcntl

    try:
        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
        return True
    except OSError:
        return False


def sweep_temp_files(base: str | os.PathLike) -> list[Path]:
    """Remove the temp files that killed writers left under `base`, where runs write files
    atomically (cache/<stage>/, runs/<run>/, models/, models/<sha>/, checkpoints/<entry>/, and
    the base itself): a file of this host whose writer's process is gone, another host's older
    than STALE_AFTER_S, and an earlier version's whose writer is gone (when its name says which)
    or older than OLD_STALE_AFTER_S. Returns what went."""
    base = Path(base)
    dirs = [base]
    for sub in ("cache", "runs", "models", "checkpoints", "leases"):
        top = base / sub
        if top.is_dir():
            dirs.append(top)
            dirs.extend(d for d in _subdirs(top) if not d.name.startswith("."))
    removed = []
    now = time.time()
    for d in dirs:
        try:
            names = [e for e in os.scandir(d) if e.name.startswith(".") and e.is_file(follow_symlinks=False)]
        except OSError:
            continue
        for e in names:
            if _stale(e, now):
                with contextlib.suppress(OSError):  # gone meanwhile, or a folder we may not change: leave it
                    os.unlink(e.path)
                    removed.append(Path(e.path))
    if removed:
        log.info("removed %d temp files that killed writers left under %s", len(removed), base)
    return removed


def _subdirs(d: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _stale(entry: os.DirEntry, now: float) -> bool:
    m = _TEMP.fullmatch(entry.name)
    try:
        age = now - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    if m is None:
        old = _OLD_TEMP.fullmatch(entry.name)
        if old is not None and old["pid"] and int(old["pid"]) != os.getpid() and not process_alive(int(old["pid"])):
            return True
        return old is not None and age > OLD_STALE_AFTER_S
    if m["host"] != _HOST:
        return age > STALE_AFTER_S
    return int(m["pid"]) != os.getpid() and not process_alive(int(m["pid"]))


def process_alive(pid: int) -> bool:
    """Is `pid` a live process? A zombie (exited, not yet reaped by its parent) counts as gone;
    without /proc (macOS) only whether a signal could reach it. Reaps nothing."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass  # no /proc (macOS), or it is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
    return True


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented, strict JSON (no NaN or infinities: ValueError), atomically."""
    return write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode())


def inside(root: str | os.PathLike, path: str | os.PathLike, field: str = "output.root") -> Path:
    """`path` resolved (relative to `root`), required to lie under the resolved `root`.

    A run or stage name with `..` or an absolute part, or a symlink pointing out of the root,
    raises InputError naming `field` instead of writing outside the output root.
    """
    base = Path(root).expanduser().resolve()
    resolved = (base / Path(path).expanduser()).resolve()
    if resolved != base and base not in resolved.parents:
        raise InputError(field, str(path), f"resolves to {resolved}, outside the output root {base}")
    return resolved


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_path(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, or of a directory's files (relative names and their sha256s)."""
    p = Path(path)
    if not p.is_dir():
        return sha256_file(p)
    return sha256_json({q.relative_to(p).as_posix(): sha256_file(q) for q in sorted(p.rglob("*")) if q.is_file()})


def sha256_json(obj: Any) -> str:
    """Hex sha256 of a canonical JSON encoding of `obj`."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- stage entries


class StageRef(BaseModel):
    """What a stage task returns: small, JSON-able, and fixed by the key alone."""

    model_config = ConfigDict(frozen=True)

    stage: str
    key: str
    base: str  # the base directory (absolute) the entry lives under

    @property
    def path(self) -> Path:
        return entry_dir(self.base, self.stage, self.key)

    def file(self, name: str) -> Path:
        return self.path / name

    def manifest(self) -> dict:
        return read_json(self.path / MANIFEST)


def entry_dir(base: str | os.PathLike, stage: str, key: str) -> Path:
    """The directory of one stage output."""
    return Path(base) / "cache" / stage / key


def verify(path: str | os.PathLike) -> str | None:
    """None if the entry at `path` is complete and intact, else why not (one short phrase)."""
    path = Path(path)
    if not path.is_dir():
        return "output missing"
    try:
        manifest = read_json(path / MANIFEST)
    except FileNotFoundError:
        return "manifest missing"
    except (OSError, ValueError):
        return "manifest unreadable"
    for name, info in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} missing"
        if file.stat().st_size != info["bytes"]:
            return f"{name} has {file.stat().st_size} bytes, expected {info['bytes']}"
        if sha256_file(file) != info["sha256"]:
            return f"{name} sha256 mismatch"
    return None


def content_hash(manifest: dict) -> str:
    """A hash of an entry's file contents (not its timestamps): what downstream keys use."""
    return sha256_json({n: f["sha256"] for n, f in sorted(manifest["files"].items())})


class EntryWriter:
    """Collects a stage's files in a temp dir; `publish` writes the manifest and renames it."""

    def __init__(self, base: str | os.PathLike, stage: str, key: str) -> None:
        self.final = entry_dir(base, stage, key)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.dir = self.final.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        self.dir.mkdir()
        self.extra: dict[str, dict] = {}

    def path(self, name: str) -> Path:
        """Where to write file `name` (inside the temp dir)."""
        p = self.dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def describe(self, name: str, **info: Any) -> None:
        """Attach shape/schema notes to file `name` in the manifest."""
        self.extra.setdefault(name, {}).update(info)

    def publish(self, key_inputs: dict, meta: dict | None = None) -> dict:
        """Hash every file, write manifest.json last, and move the entry into place."""
        files = {}
        for p in sorted(q for q in self.dir.rglob("*") if q.is_file()):
            name = p.relative_to(self.dir).as_posix()
            files[name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size, **self.extra.get(name, {})}
        manifest = {
            "stage": self.final.parent.name,
            "key": self.final.name,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "files": files,
            "key_inputs": key_inputs,
            "meta": meta or {},
            "built_by": {"host": socket.gethostname(), "pid": os.getpid(),  # provenance (a Dask worker, ...)
                         "peak_rss_mb": round(peak_rss_mb(), 1)},
        }
        write_json(self.dir / MANIFEST, manifest)
        if self.final.exists():  # a bad entry we are replacing: move it aside first
            trash = self.final.parent / f".trash-{self.final.name}-{uuid.uuid4().hex[:8]}"
            os.replace(self.final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(self.dir, self.final)
        return manifest

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def lock(base: str | os.PathLike, stage: str, key: str) -> FileLock:
    """An inter-process lock for one stage entry."""
    path = Path(base) / "locks" / f"{stage}-{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path))


def build_entry(
    base: str | os.PathLike,
    stage: str,
    key: str,
    key_inputs: dict,
    compute: Callable[[EntryWriter], dict | None],
    force: bool = False,
) -> tuple[StageRef, bool]:
    """The entry for `key` and whether this call built it: (ref, built).

    `compute` writes its files through the writer and returns manifest `meta`. Holding the
    entry's lock, a valid entry (one another run may just have finished) is reused unless
    `force`; an invalid one is replaced. Then the work left in the stage's folder by builders
    that died (`.tmp-<key>-*` of any key) is removed (`remove_dead_work`).
    """
    ref = StageRef(stage=stage, key=key, base=str(Path(base).resolve()))
    with lock(base, stage, key):
        problem = verify(ref.path)
        built = problem is not None or force
        if not built:
            log.debug("%s: reusing %s", stage, ref.path)
        else:
            if problem not in (None, "output missing"):
                log.warning("%s: cached output is unusable (%s); recomputing", stage, problem)
            writer = EntryWriter(base, stage, key)
            try:
                meta = compute(writer)
                writer.publish(key_inputs, meta)
            except OSError as exc:  # a full disk's write error names no file: name the entry
                writer.discard()
                raise with_path(exc, writer.final) from exc
            except BaseException:
                writer.discard()
                raise
    remove_dead_work(base, stage)  # this key's and any other's: work of builders that died
    return ref, built


_WORK = re.compile(r"\.(?:tmp|trash)-([0-9A-Za-z]+)-[0-9a-f]{8}")


def remove_dead_work(base: str | os.PathLike, stage: str) -> list[Path]:
    """Remove the `.tmp-<key>-*` (and `.trash-<key>-*`) directories of builders that died, whatever
    their key: one whose entry lock can be taken at once has no live builder. Returns what was removed."""
    removed = []
    stage_dir = Path(base) / "cache" / stage
    for work in sorted(stage_dir.glob(".*-*-*")):
        m = _WORK.fullmatch(work.name)
        if m is None or not work.is_dir():
            continue
        try:
            with lock(base, stage, m[1]).acquire(timeout=0):
                if work.exists():
                    shutil.rmtree(work, ignore_errors=True)
                    removed.append(work)
        except Timeout:  # a live builder holds it: its work in progress stays
            continue
    if removed:
        log.info("%s: removed %d directories left by builders that died", stage, len(removed))
    return removed


def remove_all_dead_work(base: str | os.PathLike) -> list[Path]:
    """`remove_dead_work` in every stage folder under `base`."""
    cache = Path(base) / "cache"
    stages = [d.name for d in cache.iterdir() if d.is_dir()] if cache.is_dir() else []
    return [p for stage in stages for p in remove_dead_work(base, stage)]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux: VmHWM; else ru_maxrss)."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
