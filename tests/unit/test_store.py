import json
import os
import threading

import pytest

from tasks.runtime import store


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path):
    p = tmp_path / "a" / "x.json"
    store.write_json(p, {"a": 1})
    store.write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert os.listdir(p.parent) == ["x.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    p = tmp_path / "x.bin"
    store.write_bytes(p, b"old")
    with pytest.raises(RuntimeError):
        with store.atomic_path(p) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.bin"]


def make_entry(tmp_path, key="k1", payload=b"data", calls=None):
    def compute(w):
        (calls if calls is not None else []).append(1)
        w.path("f.bin").write_bytes(payload)
        w.path("sub/g.txt").write_text("g")
        return {"note": "hi"}

    return store.build_entry(tmp_path, "stage", key, {"params": {}}, compute)[0]


def test_entry_has_a_manifest_written_last_and_verifies(tmp_path):
    ref = make_entry(tmp_path)
    m = ref.manifest()
    assert set(m["files"]) == {"f.bin", "sub/g.txt"}
    assert m["files"]["f.bin"]["sha256"] == store.sha256_file(ref.file("f.bin"))
    assert m["meta"] == {"note": "hi"} and m["key"] == "k1"
    assert store.verify(ref.path) is None
    assert not [p for p in ref.path.parent.iterdir() if p.name.startswith(".tmp")]


def test_verify_names_what_is_wrong(tmp_path):
    ref = make_entry(tmp_path)
    ref.file("f.bin").write_bytes(b"datb")  # same size, other bytes
    assert store.verify(ref.path) == "f.bin sha256 mismatch"
    ref.file("f.bin").write_bytes(b"da")
    assert "2 bytes" in store.verify(ref.path)
    ref.file("f.bin").unlink()
    assert store.verify(ref.path) == "f.bin missing"
    (ref.path / "manifest.json").unlink()
    assert store.verify(ref.path) == "manifest missing"
    assert store.verify(tmp_path / "nope") == "output missing"


def test_build_entry_reuses_a_valid_entry_and_replaces_a_bad_one(tmp_path):
    calls = []
    ref = make_entry(tmp_path, calls=calls)
    make_entry(tmp_path, calls=calls)
    assert len(calls) == 1
    assert store.build_entry(tmp_path, "stage", "k1", {}, lambda w: None) == (ref, False)  # reused, not built
    ref.file("f.bin").write_bytes(b"junk!")
    make_entry(tmp_path, calls=calls)
    assert len(calls) == 2 and store.verify(ref.path) is None and ref.file("f.bin").read_bytes() == b"data"


def test_a_failing_compute_publishes_nothing(tmp_path):
    def boom(w):
        w.path("f.bin").write_bytes(b"half")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        store.build_entry(tmp_path, "stage", "k", {}, boom)
    assert not (tmp_path / "cache" / "stage" / "k").exists()
    assert not [p for p in (tmp_path / "cache" / "stage").iterdir() if p.name.startswith(".tmp")]


def test_concurrent_builders_compute_once(tmp_path):
    calls, barrier = [], threading.Barrier(4)

    def worker():
        barrier.wait()
        make_entry(tmp_path, calls=calls)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and store.verify(tmp_path / "cache" / "stage" / "k1") is None


def test_content_hash_ignores_timestamps(tmp_path):
    a = make_entry(tmp_path, key="a").manifest()
    b = make_entry(tmp_path, key="b").manifest()
    assert store.content_hash(a) == store.content_hash(b)
    c = make_entry(tmp_path, key="c", payload=b"other").manifest()
    assert store.content_hash(c) != store.content_hash(a)


def test_work_left_by_a_dead_builder_is_removed_by_the_next_one(tmp_path):
    left = tmp_path / "cache" / "stage" / ".tmp-k1-deadbeef"
    (left / "sub").mkdir(parents=True)  # a builder killed mid-entry
    (left / "sub" / "half.bin").write_bytes(b"half")
    busy = tmp_path / "cache" / "stage" / ".tmp-k2-cafe0000"  # another key's builder, alive: not ours to touch
    busy.mkdir()
    dead = tmp_path / "cache" / "stage" / ".tmp-k3-0badf00d"  # another key's builder that died
    dead.mkdir()
    with store.lock(tmp_path, "stage", "k2"):
        make_entry(tmp_path)
    assert not left.exists() and busy.exists() and not dead.exists()
    make_entry(tmp_path)  # a later run that only reuses cleans up too
    assert not busy.exists()



def test_atomically_written_files_get_the_mode_of_any_new_file(tmp_path):
    store.write_json(tmp_path / "a.json", {"x": 1})
    (tmp_path / "plain.txt").write_text("x")
    mode = (tmp_path / "a.json").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.txt").stat().st_mode & 0o777 == store.FILE_MODE
