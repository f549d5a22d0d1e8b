from tasks import caching, store
from tasks.caching import code_hashes, explain_change, plan_stage


def test_train_key_covers_its_helpers_but_not_figures():
    train = code_hashes("tasks.train")
    assert {"tasks.train", "tasks.model", "tasks.windowing"} <= set(train)
    assert "tasks.figures" not in train
    assert "tasks.store" not in train  # machinery: where files go, not what they hold
    assert "tasks.train" in code_hashes("tasks.figures")  # figures reads train's history format


def test_editing_a_helper_changes_the_hash_of_stages_that_use_it():
    edited = caching._read_source("tasks.model") + "\n# an edit\n"
    before, after = code_hashes("tasks.train"), code_hashes("tasks.train", sources={"tasks.model": edited})
    assert before["tasks.model"] != after["tasks.model"]
    assert before["tasks.train"] == after["tasks.train"]
    assert code_hashes("tasks.generate") == code_hashes("tasks.generate", sources={"tasks.model": edited})


def test_relative_and_attribute_imports_are_followed():
    mods = caching.imported_project_modules("tasks.x", "from .model import Forecaster\nfrom tasks import metrics\nimport tasks.store\n")
    assert mods == {"tasks.model", "tasks.metrics", "tasks.store"}


def inputs(**over):
    base = {"params": {"train": {"epochs": 100, "lr": 0.001}}, "upstream": {"window": "w1"},
            "code": {"tasks.train": "c1"}, "env": {"torch": "2.13.0"}}
    base.update(over)
    return base


def test_explanations_name_what_changed():
    assert explain_change(None, inputs()) == "no cached output (first run)"
    assert explain_change(inputs(), inputs(params={"train": {"epochs": 5, "lr": 0.001}})) == (
        "new parameters: train.epochs 100->5"
    )
    assert explain_change(inputs(), inputs(upstream={"window": "w2"})) == "upstream changed: window"
    assert explain_change(inputs(), inputs(code={"tasks.train": "c2"})) == "code changed: tasks.train"
    assert explain_change(inputs(), inputs(env={"torch": "2.14.0"})) == "environment changed: torch '2.13.0'->'2.14.0'"
    assert explain_change(inputs(), inputs()) == "output missing (cache entry deleted)"


def plan(tmp_path, force=None, **over):
    i = inputs(**over)
    return plan_stage(tmp_path, "train", params=i["params"], upstream=i["upstream"], code=i["code"], env=i["env"], force=force)


def test_plan_reuses_only_a_verified_entry(tmp_path):
    p = plan(tmp_path)
    assert p.run and p.reason == "no cached output (first run)"

    def compute(w):
        w.path("model.pt").write_bytes(b"weights")

    store.build_entry(tmp_path, "train", p.key, p.key_inputs, compute)
    caching.record_latest(p)
    assert plan(tmp_path).run is False and plan(tmp_path).reason == "inputs unchanged"
    forced = plan(tmp_path, force="--refresh train")
    assert forced.run and forced.forced and forced.reason == "forced (--refresh train)"
    p.ref.file("model.pt").write_bytes(b"w")
    corrupt = plan(tmp_path)
    assert corrupt.run and corrupt.reason.startswith("output missing or corrupt: model.pt")
    changed = plan(tmp_path, params={"train": {"epochs": 7, "lr": 0.001}})
    assert changed.key != p.key and changed.reason == "new parameters: train.epochs 100->7"


def test_prefect_key_is_withheld_when_a_reused_entry_went_bad(tmp_path):
    p = plan(tmp_path)
    store.build_entry(tmp_path, "train", p.key, p.key_inputs, lambda w: w.path("a").write_text("x"))
    reuse = plan(tmp_path)
    assert caching._stage_cache_key(None, {"plan": reuse}) == f"train-{p.key}"
    reuse.ref.file("a").unlink()
    assert caching._stage_cache_key(None, {"plan": reuse}) is None
    assert caching._stage_cache_key(None, {"plan": plan(tmp_path)}) == f"train-{p.key}"  # must-run plans keep it
