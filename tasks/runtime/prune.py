"""`clean`: drop old run folders and the cache entries that no kept run uses.

    keep    the newest `keep` run folders (by when their stages.json was written), the champion's
            run folder, every cache entry they name (stages.json), and each stage's last-used
            entry (cache/<stage>/latest.json)
    drop    the other run folders and cache entries, and the checkpoints of trainings that finished
            (their train entry exists, or goes now); a killed training's checkpoint stays, to resume
    never   models/ (the champions' model files and the registry), locks, work in progress
            (.tmp-*), an entry whose lock another process holds (it is being built), and the
            entries and run folder a live run's lease names (tasks/runtime/leases.py: it is using them)

A file's bytes count as freed only when its last link goes (run folders of earlier versions
hard-linked the entries' files; they now hold copies). An entry is removed under its lock, by a
rename first, so a reader never sees half of one; the leases are read again under that lock.
Only what was really removed is reported: what could not be (a read-only directory) is listed
with the reason, and its bytes are not counted.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from filelock import Timeout

from tasks.runtime import registry, store
from tasks.runtime.leases import Leases


@dataclass
class Pruned:
    """What `prune` removed (or would remove) and kept."""

    runs: list[Path] = field(default_factory=list)
    entries: list[Path] = field(default_factory=list)  # <base>/cache/<stage>/<key>
    checkpoints: list[Path] = field(default_factory=list)
    busy: list[Path] = field(default_factory=list)  # entries left because another process held their lock
    in_use: list[Path] = field(default_factory=list)  # run folders and entries a live run's lease names
    failed: list[tuple[Path, str]] = field(default_factory=list)  # what could not be removed, and why
    kept_runs: int = 0
    kept_entries: int = 0
    freed_bytes: int = 0
    champion: bool = False  # a champion's run folder was kept beyond the newest


def run_folders(root: Path) -> list[Path]:
    """Run folders under `root`, newest first (by their stages.json, written last)."""
    runs = [d for d in (root / "runs").glob("*") if d.is_dir()] if (root / "runs").is_dir() else []

    def written(d: Path) -> float:
        marker = d / "stages.json"
        return (marker if marker.is_file() else d).stat().st_mtime

    return sorted(runs, key=written, reverse=True)


def entries_named(run_dir: Path) -> set[Path]:
    """The cache entries a run folder's stages.json says the run used (every bucket's and member's)."""
    try:
        record = store.read_json(run_dir / "stages.json")
        stages = record["stages"]
    except (OSError, ValueError, KeyError):
        return set()
    named = [s["entry"] for s in stages.values() if s.get("entry")] + list(record.get("entries") or [])
    return {Path(e).resolve() for e in named}


def cache_entries(base: Path) -> list[Path]:
    """Every published entry <base>/cache/<stage>/<key> (not work in progress)."""
    cache = base / "cache"
    if not cache.is_dir():
        return []
    return sorted(e for stage in cache.iterdir() if stage.is_dir() for e in stage.iterdir()
                  if e.is_dir() and not e.name.startswith("."))


def latest_entries(base: Path) -> set[Path]:
    """The entry each stage used last (cache/<stage>/latest.json)."""
    out = set()
    for latest in (base / "cache").glob("*/latest.json"):
        try:
            out.add((latest.parent / store.read_json(latest)["key"]).resolve())
        except (OSError, ValueError, KeyError):
            continue
    return out


def freed_by(paths: list[Path]) -> int:
    """Bytes freed by deleting every file under `paths`: a file counts once all its links go."""
    links: Counter = Counter()
    sizes: dict[tuple[int, int], tuple[int, int]] = {}
    for top in paths:
        for f in (p for p in top.rglob("*") if p.is_file() and not p.is_symlink()):
            st = f.stat()
            key = (st.st_dev, st.st_ino)
            links[key] += 1
            sizes[key] = (st.st_size, st.st_nlink)
    return sum(size for key, (size, nlink) in sizes.items() if links[key] >= nlink)


def prune(root: str | os.PathLike, data_dir: str | os.PathLike, keep: int = 10, dry_run: bool = False) -> Pruned:
    """Remove (unless `dry_run`) what the module docstring says; return what went and what stayed."""
    root, data = Path(root).expanduser().resolve(), Path(data_dir).expanduser().resolve()
    leases = Leases([root, data])
    runs = [r for r in run_folders(root)]
    live = [r for r in runs if leases.holds(r)]
    champion = (registry.load(root).get("champion") or {}).get("run") if root.is_dir() else None
    kept = [r for r in runs if r not in live]
    kept = kept[:keep] + [r for r in kept[keep:] if r.name == champion] + live
    used = set().union(*map(entries_named, kept), latest_entries(root), latest_entries(data))
    entries = sorted({*cache_entries(root), *cache_entries(data)})
    out = Pruned(runs=[r for r in runs if r not in kept], kept_runs=len(kept) - len(live), in_use=list(live))
    out.champion = any(r.name == champion for r in kept[keep:]) if champion else False
    out.entries = [e for e in entries if e.resolve() not in used]
    out.kept_entries = len(entries) - len(out.entries)
    out.checkpoints = sorted(c for c in (root / "checkpoints").glob("train-*")
                             if c.is_dir() and (root / "cache" / "train" / c.name.removeprefix("train-")).is_dir())
    if dry_run:
        out.entries = [e for e in out.entries if not leases.holds(e)]
        out.freed_bytes = freed_by(out.runs + out.entries + out.checkpoints)
        return out
    leases.remove_stale()
    removed_runs = []
    for path in out.runs:  # before the entries: a copy of an entry's file counts when its run folder goes
        size = freed_by([path])
        if (why := remove_tree(path)) is None:
            removed_runs.append(path)
            out.freed_bytes += size
        else:
            out.failed.append((path, why))
    out.runs = removed_runs
    removed = []
    for entry in out.entries:
        size = freed_by([entry])
        outcome = remove_entry(entry, leases)
        if outcome == "removed":
            removed.append(entry)
            out.freed_bytes += size
        elif outcome == "busy":
            out.busy.append(entry)
        elif outcome == "in use":
            out.in_use.append(entry)
        elif outcome != "gone":
            out.failed.append((entry, outcome))
    out.entries = removed
    removed_checkpoints = []
    for path in out.checkpoints:
        size = freed_by([path])
        if (why := remove_tree(path)) is None:
            removed_checkpoints.append(path)
            out.freed_bytes += size
        else:
            out.failed.append((path, why))
    out.checkpoints = removed_checkpoints
    return out


def remove_tree(path: Path) -> str | None:
    """Remove a directory: renamed aside first (one step that either happens or not), then
    deleted. None when it is gone, else why not (the operating system's reason)."""
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(path, trash)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    errors: list[str] = []
    shutil.rmtree(trash, onerror=lambda fn, p, info: errors.append(getattr(info[1], "strerror", None) or str(info[1])))
    return None if not errors else f"only partly removed ({errors[0]}); what is left is in {trash}"


def remove_entry(entry: Path, leases: Leases | None = None) -> str:
    """Remove one cache entry under its lock: "removed"; "busy" when another process holds the
    lock (it is building the entry); "in use" when a live run's lease names it (read again under
    the lock); "gone" when it went meanwhile; else why it could not be removed."""
    base, stage, key = entry.parent.parent.parent, entry.parent.name, entry.name
    try:
        lock = store.lock(base, stage, key)
        lock.acquire(timeout=0)
    except Timeout:
        return "busy"
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        if leases is not None and leases.holds(entry):
            return "in use"
        if not entry.exists():
            return "gone"
        return "removed" if (why := remove_tree(entry)) is None else why
    finally:
        lock.release()


def describe(p: Pruned, keep: int, dry_run: bool = False) -> str:
    """One line: what went (or would go), how much that frees, what stayed, and what could not go
    and why."""
    if p.champion:
        which = f"the newest {keep} and the champion's"
    else:  # fewer folders than --keep: all of them, not "the newest 10" of 5
        which = f"the newest {keep}" if p.kept_runs >= keep else f"all there are; --keep {keep}"
    kept = (f"{_count(p.kept_runs, 'run folder')} ({which}) and "
            f"{_count(p.kept_entries, 'cache entry', 'cache entries')} they use")
    tail = _busy(p) + _in_use(p) + _failed(p)
    if not (p.runs or p.entries or p.checkpoints):
        return (f"removed nothing: kept {kept}" if p.failed else f"nothing to remove: kept {kept}") + tail
    by_stage = Counter(e.parent.name for e in p.entries)
    stages = f" ({', '.join(f'{stage} {n}' for stage, n in sorted(by_stage.items()))})" if by_stage else ""
    verb, freed = ("would remove", "would free") if dry_run else ("removed", "freed")
    return (f"{verb} {_count(len(p.runs), 'run folder')}, {_count(len(p.entries), 'cache entry', 'cache entries')}"
            f"{stages} and {_count(len(p.checkpoints), 'checkpoint')}: {freed} {_size(p.freed_bytes)}; kept {kept}"
            + tail)


def _busy(p: Pruned) -> str:
    return f"; left {_count(len(p.busy), 'entry', 'entries')} that another run is building" if p.busy else ""


def _in_use(p: Pruned) -> str:
    if not p.in_use:
        return ""
    runs = sum(1 for x in p.in_use if x.parent.name == "runs")
    parts = ([_count(runs, "run folder")] if runs else []) + (
        [_count(len(p.in_use) - runs, "cache entry", "cache entries")] if len(p.in_use) > runs else [])
    return f"; left {' and '.join(parts)} that live runs use"


def _failed(p: Pruned) -> str:
    if not p.failed:
        return ""
    path, why = p.failed[0]
    return (f"; could not remove {_count(len(p.failed), 'folder')} ({path}: {why}"
            + (f"; and {len(p.failed) - 1} more" if len(p.failed) > 1 else "") + ")")


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
