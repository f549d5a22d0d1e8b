"""`clean`: old run folders and the cache entries nobody kept uses go; the champion's and the newest stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tasks.runtime import registry, store
from tasks.runtime.prune import describe, prune

KB = 1024


def entry(base: Path, stage: str, key: str, size: int = 4 * KB) -> Path:
    def compute(w: store.EntryWriter) -> None:
        w.path("blob.bin").write_bytes(os.urandom(size))

    ref, _ = store.build_entry(base, stage, key, {}, compute)
    return ref.path


def run_folder(root: Path, name: str, entries: dict[str, Path], age_s: float) -> Path:
    """A run folder as the ledger writes it: copies of its entries' files, stages.json last."""
    d = root / "runs" / name
    d.mkdir(parents=True)
    for stage, path in entries.items():
        store.copy_file(path / "blob.bin", d / f"{stage}.bin")
    store.write_json(d / "stages.json", {"stages": {s: {"entry": str(p)} for s, p in entries.items()}})
    then = time.time() - age_s
    os.utime(d / "stages.json", (then, then))
    return d


def layout(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    """Three runs (old, champion's, new) over shared and own entries, a finished and a killed training."""
    root, data = tmp_path / "artifacts", tmp_path / "data"
    e = {"gen": entry(data, "generate", "g1"), "old": entry(root, "train", "t-old"),
         "champ": entry(root, "train", "t-champ"), "new": entry(root, "train", "t-new")}
    run_folder(root, "rnn-old", {"generate": e["gen"], "train": e["old"]}, age_s=300)
    run_folder(root, "rnn-champ", {"generate": e["gen"], "train": e["champ"]}, age_s=200)
    run_folder(root, "rnn-new", {"generate": e["gen"], "train": e["new"]}, age_s=100)
    registry.commit(root, {**registry.empty(), "champion": {"run": "rnn-champ", "model_sha256": "x", "path": "x"}})
    for key in ("t-old", "t-killed"):
        (root / "checkpoints" / f"train-{key}").mkdir(parents=True)
        (root / "checkpoints" / f"train-{key}" / "checkpoint.pt").write_bytes(b"c" * KB)
    return root, data, e


def test_clean_keeps_the_newest_runs_the_champions_and_what_they_use(tmp_path):
    root, data, e = layout(tmp_path)
    out = prune(root, data, keep=1)
    assert [p.name for p in out.runs] == ["rnn-old"]
    assert out.entries == [e["old"]] and not e["old"].exists()
    assert all(e[k].is_dir() for k in ("gen", "champ", "new"))
    assert sorted(p.name for p in (root / "runs").iterdir()) == ["rnn-champ", "rnn-new"]
    assert [p.name for p in out.checkpoints] == ["train-t-old"]
    assert (root / "checkpoints" / "train-t-killed").is_dir()  # a killed training can still resume
    assert (root / "models" / "registry.json").is_file()
    # the old entry's file (4 KB), the run folder's copies of it and of the shared entry's (4 KB
    # each), its stages.json and the checkpoint (1 KB)
    assert 13 * KB <= out.freed_bytes < 14 * KB
    line = describe(out, keep=1)
    assert line.startswith("removed 1 run folder, 1 cache entry (train 1) and 1 checkpoint: freed 13.")
    assert line.endswith("kept 2 run folders (the newest 1 and the champion's) and 3 cache entries they use")


def test_a_dry_run_removes_nothing_and_says_what_would_go(tmp_path):
    root, data, _ = layout(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    out = prune(root, data, keep=1, dry_run=True)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert describe(out, keep=1, dry_run=True).startswith("would remove 1 run folder, 1 cache entry (train 1)")
    assert prune(root, data, keep=10).runs == []
    assert describe(prune(root, data, keep=10), keep=10) == ("nothing to remove: kept 3 run folders (all there are; "
                                                            "--keep 10) and 4 cache entries they use")  # no champion beyond them


def test_an_entry_being_built_is_left_alone(tmp_path):
    root, data, e = layout(tmp_path)
    with store.lock(root, "train", "t-old"):
        out = prune(root, data, keep=1)
    assert out.busy == [e["old"]] and e["old"].is_dir() and out.entries == []
    assert describe(out, keep=1).endswith("left 1 entry that another run is building")


def test_every_bucket_entry_a_kept_run_used_stays(tmp_path):
    root, data = tmp_path / "artifacts", tmp_path / "data"
    buckets = [entry(data, "ingest", f"b{i}") for i in range(3)]  # stages.json's row names the first only
    old = entry(data, "ingest", "gone")
    d = run_folder(root, "rnn-new", {"generate": buckets[0]}, age_s=10)
    record = store.read_json(d / "stages.json")
    store.write_json(d / "stages.json", {**record, "entries": [str(b) for b in buckets]})
    run_folder(root, "rnn-old", {"generate": old}, age_s=100)
    out = prune(root, data, keep=1)
    assert out.entries == [old] and all(b.is_dir() for b in buckets)


# A run that holds its lease (tasks/runtime/leases.py) on what it names, then waits to be killed.
HOLD_LEASE = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from tasks.runtime.leases import Lease\n"
    "root, data = Path(sys.argv[1]), Path(sys.argv[2])\n"
    "with Lease('rnn-live', [root, data]) as lease:\n"
    "    lease.add(*sys.argv[3:])\n"
    "    print('leased', flush=True)\n"
    "    time.sleep(600)\n"
)


def test_what_a_live_runs_lease_names_stays_and_a_dead_runs_lease_protects_nothing(tmp_path):
    import signal
    import subprocess
    import sys

    root, data, e = layout(tmp_path)
    live_run = root / "runs" / "rnn-new"  # as if a live run were (re)writing it
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, str(root), str(data), str(e["old"]), str(live_run)],
                              cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "leased"
        out = prune(root, data, keep=0)
        assert e["old"].is_dir() and live_run.is_dir() and not (root / "runs" / "rnn-old").exists()
        assert out.in_use == [live_run, e["old"]]
        assert describe(out, keep=0).endswith("left 1 run folder and 1 cache entry that live runs use")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert (root / "leases" / "rnn-live.lease").is_file()  # a kill leaves its lease behind...
    out = prune(root, data, keep=0)
    assert not e["old"].exists() and not live_run.exists() and not e["new"].exists()  # ...which protects nothing
    assert not (root / "leases" / "rnn-live.lease").exists() and out.in_use == []


def test_a_lease_named_after_clean_started_is_seen_under_the_entrys_lock(tmp_path):
    from tasks.runtime.leases import Lease, Leases
    from tasks.runtime.prune import remove_entry

    root, data, e = layout(tmp_path)
    leases = Leases([root, data])
    assert not leases.holds(e["new"])  # clean read the leases: nobody uses it yet
    with Lease("rnn-late", [root, data]) as lease:
        lease.add(e["new"])  # a run names it before it looks at it
        assert remove_entry(e["new"], leases) == "in use" and e["new"].is_dir()
    assert remove_entry(e["new"], leases) == "removed"


def read_only(path: Path) -> bool:
    """Make `path` refuse changes (chmod, or, for root, whom modes do not stop, chattr +i); False if impossible."""
    import subprocess

    if os.geteuid() != 0:
        path.chmod(0o555)
        return True
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0


def writable(path: Path) -> None:
    import subprocess

    if os.geteuid() != 0:
        path.chmod(0o755)
    else:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)


def test_clean_of_a_read_only_output_dir_says_it_removed_nothing_and_why(tmp_path):
    import pytest

    root, data, e = layout(tmp_path)
    locked = [root / "runs", root / "cache" / "train", root / "checkpoints"]
    try:
        if not all(read_only(p) for p in locked):
            pytest.skip("cannot make a folder read-only here")
        out = prune(root, data, keep=1)
        line = describe(out, keep=1)
    finally:
        for p in locked:
            writable(p)
    assert out.runs == out.entries == out.checkpoints == [] and out.freed_bytes == 0
    assert (root / "runs" / "rnn-old").is_dir() and e["old"].is_dir()
    assert line.startswith("removed nothing: kept 2 run folders")
    assert f"could not remove 3 folders ({root / 'runs' / 'rnn-old'}: " in line
    assert ("Permission denied" in line) or ("Operation not permitted" in line)
