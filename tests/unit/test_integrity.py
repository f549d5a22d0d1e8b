"""What a run writes stays what it wrote: verified checkpoints, independent copies, registries
checked by shape, fixed threads, named write errors, swept temp files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from tasks.components.fit import train_model
from tasks.components.specs import FitSettings, NetworkSpec
from tasks.components.synthetic import sine_values
from tasks.config import PipelineConfig
from tasks.errors import InputError
from tasks.runtime import registry, store
from tasks.runtime.caching import StagePlan
from tasks.runtime.ledger import write_run_dir
from tasks.runtime.stages import Paths, Run, build
from tasks.train import load_checkpoint, previous_checkpoint, save_checkpoint
from tests.helpers import split_for

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


def flip_a_byte(path: Path, at: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


class Killed(Exception):
    pass


def test_a_checkpoint_with_a_flipped_byte_is_caught_and_the_training_ends_identical(tmp_path, caplog):
    v = sine_values(n_points=240, noise=0.05, seed=3)
    split, net = split_for(v), NetworkSpec(hidden_size=8, num_layers=2, dropout=0.2)  # dropout: RNG state matters
    cfg = FitSettings(epochs=8, patience=0, checkpoint_every=2)
    full, s_full = train_model(v, split, net, cfg, CPU)

    path = tmp_path / "checkpoints" / "train-k" / "checkpoint.pt"

    def killed_after_epoch_5(epoch, st):
        if epoch == 5:
            raise Killed

    with pytest.raises(Killed):  # checkpoints at epochs 2 and 4 are on disk
        train_model(v, split, net, cfg, CPU, checkpoint=lambda b: save_checkpoint(path, b),
                    on_epoch=killed_after_epoch_5)
    assert load_checkpoint(path)["state"]["epoch"] == 4
    flip_a_byte(path)
    resume = load_checkpoint(path)
    assert resume["state"]["epoch"] == 2  # the previous one
    assert "is unusable (its sha256 does not match its content); training resumes from the previous" in caplog.text
    assert not path.exists()  # set aside, never resumed from again
    torch.manual_seed(12345)
    resumed, s_res = train_model(v, split, net, cfg, CPU, resume=resume)
    assert s_res.history == s_full.history
    assert all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), resumed.state_dict().values()))

    flip_a_byte(previous_checkpoint(path), at=60)
    assert load_checkpoint(path) is None  # neither is intact: a fresh start (the same result again)
    path.write_bytes(b"not a checkpoint")
    assert load_checkpoint(path) is None


def test_run_folders_and_the_champion_hold_copies_that_an_edit_cannot_reach_through(tmp_path):
    cfg = PipelineConfig.model_validate({"output": {"root": str(tmp_path / "artifacts"),
                                                    "data_dir": str(tmp_path / "data")}})
    run = Run("rnn-1", cfg, cfg, Paths.from_config(cfg))
    ref, _ = store.build_entry(run.paths.root, "train", "k", {}, lambda w: w.path("model.pt").write_bytes(b"m" * 64))
    from tasks.train import STAGE

    run.refs["train"], run.specs["train"] = ref, STAGE
    run_dir = write_run_dir(run, {})
    champion = registry.install_model(run.paths.root, ref.file("model.pt"))
    for copy in (run_dir / "model.pt", registry.model_path(run.paths.root, champion)):
        with open(copy, "r+b") as fh:  # an edit in place, as an editor or a script would make
            fh.write(b"edited")
    assert store.verify(ref.path) is None  # the cache entry is intact
    assert ref.file("model.pt").read_bytes() == b"m" * 64


@pytest.mark.parametrize("content, why", [
    ("[]", "it holds a JSON list, not an object"),
    ('{"champion": []}', "champion is a list, not a model record"),
    ('{"champion": {"path": "a/model.pt"}}', "champion has no model_sha256 text"),
    ('{"previous": {"path": "../../etc/passwd", "model_sha256": "ab"}}',
     "previous path '../../etc/passwd' is not under"),
    ('{"history": {}}', "history is a object, not a list"),
    ("{not json", "not a readable registry"),
])
def test_a_registry_of_the_wrong_shape_is_one_line_before_any_stage_runs(tmp_path, capsys, content, why):
    from flows.commands import main

    (tmp_path / "artifacts" / "models").mkdir(parents=True)
    path = tmp_path / "artifacts" / "models" / "registry.json"
    path.write_text(content)
    with pytest.raises(InputError, match="registry"):
        registry.load(tmp_path / "artifacts")
    status = main(["--promote", "--epochs", "1", "--output-dir", str(tmp_path / "artifacts"),
                   "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith(f"error: model registry='{path}': ") and why in err[0]
    assert not (tmp_path / "artifacts" / "cache").exists() and not (tmp_path / "data").exists()


def test_each_stage_task_computes_with_the_runs_threads_in_any_runner_thread(tmp_path):
    seen = []

    def compute(w):
        seen.append(torch.get_num_threads())

    def in_a_runner_thread(threads: int, key: str) -> int:
        torch.set_num_threads(2)  # what another task left in this thread
        plan = StagePlan(stage="validate", key=key, base=str(tmp_path), run=True, reason="r", key_inputs={},
                         threads=threads)
        build(plan, compute)
        return torch.get_num_threads()

    with ThreadPoolExecutor(1) as pool:
        after = [pool.submit(in_a_runner_thread, n, f"k{n}").result() for n in (1, 3)]
    assert seen == [1, 3] and after == [2, 2]  # fixed for the task, restored after it


# Writes on a file system that refuses them (RLIMIT_FSIZE: EFBIG, as a full disk's ENOSPC would).
FULL = (
    "import json, resource, signal, sys\n"
    "from pathlib import Path\n"
    "from tasks.runtime import store\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
    "base, out = Path(sys.argv[1]), {}\n"
    "def attempt(name, fn):\n"
    "    try:\n"
    "        fn()\n"
    "        out[name] = None\n"
    "    except Exception as exc:\n"
    "        out[name] = [type(exc).__name__, getattr(exc, 'errno', None), getattr(exc, 'filename', None)]\n"
    "attempt('write_json', lambda: store.write_json(base / 'runs' / 'r' / 'stages.json', {'x': 'y' * 9000}))\n"
    "attempt('entry', lambda: store.build_entry(base, 'figures', 'k', {},\n"
    "                                           lambda w: w.path('a.png').write_bytes(b'p' * 9000)))\n"
    "print(json.dumps(out))\n"
)


def test_a_write_the_file_system_refuses_names_its_path_and_leaves_nothing_half_written(tmp_path):
    proc = subprocess.run([sys.executable, "-c", FULL, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["write_json"] == ["OSError", 27, str(tmp_path / "runs" / "r" / "stages.json")]
    assert out["entry"] == ["OSError", 27, str(tmp_path / "cache" / "figures" / "k")]
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent.name != "locks"]
    assert leftovers == []  # no temp file, no half entry


def test_save_model_raises_the_operating_systems_error_naming_the_file(tmp_path):
    from tasks.formats.model import save_model

    target = tmp_path / "full"
    target.mkdir()
    os.symlink("/dev/full", target / "model.pt")  # every write: ENOSPC
    with pytest.raises(OSError) as err:
        save_model(target, torch.nn.Linear(2, 2), _record())
    assert err.value.errno == 28 and err.value.filename == str(target / "model.pt")


def _record():
    from tasks.components.split import IDENTITY
    from tasks.formats.model import ModelFile

    return ModelFile(NetworkSpec(hidden_size=2), 3, 1, "direct", "none", (IDENTITY,), {})


def test_temp_files_of_dead_writers_are_swept_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    host = store._HOST
    (tmp_path / "cache" / "train").mkdir(parents=True)
    (tmp_path / "runs" / "rnn-1").mkdir(parents=True)
    (tmp_path / "checkpoints" / "train-k").mkdir(parents=True)
    old = time.time() - 2 * store.STALE_AFTER_S
    files = {
        "cache/train/.latest.json~{h}~{dead}~abc123.tmp": (True, None),  # this host, writer gone
        "runs/rnn-1/.stages.json~{h}~{me}~abc123.tmp": (False, None),  # a live writer (this process)
        "checkpoints/train-k/.checkpoint.pt~other-host~1~abc.tmp": (False, None),  # another host's, fresh
        "runs/rnn-1/.model.pt~other-host~1~abc.tmp": (True, old),  # another host's, two days old
        "runs/rnn-1/.model.pt.tmp{dead}": (True, None),  # an earlier version's copy, writer gone
        "cache/train/.latest.json.abcd1234.tmp": (False, None),  # an earlier version's, fresh
        ".stages.json.abcd1234.tmp": (True, old),  # an earlier version's, old
        "cache/train/.not-a-temp-file": (False, old),
    }
    paths = {}
    for name, (gone, mtime) in files.items():
        p = tmp_path / name.format(h=host, dead=dead, me=os.getpid())
        p.write_bytes(b"x")
        if mtime:
            os.utime(p, (mtime, mtime))
        paths[p] = gone
    removed = store.sweep_temp_files(tmp_path)
    assert sorted(removed) == sorted(p for p, gone in paths.items() if gone)
    assert all(p.exists() != gone for p, gone in paths.items())


def test_a_run_sweeps_at_its_start_what_killed_writers_left(tmp_path):
    cfg = PipelineConfig.model_validate({"output": {"root": str(tmp_path / "artifacts"),
                                                    "data_dir": str(tmp_path / "data")}})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / "artifacts" / "cache" / "window" / f".latest.json~{store._HOST}~{dead}~x1.tmp"
    work = tmp_path / "data" / "cache" / "generate" / ".tmp-abc-0123abcd"
    stale.parent.mkdir(parents=True)
    work.mkdir(parents=True)
    stale.write_text("{")
    with Run("rnn-1", cfg, cfg, Paths.from_config(cfg)):
        assert not stale.exists() and not work.exists()
    assert not list((tmp_path / "artifacts" / "leases").iterdir())  # the run's lease went with it
