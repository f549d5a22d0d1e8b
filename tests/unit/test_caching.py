import re

from tasks.runtime import caching, store
from tasks.runtime.caching import code_hashes, explain_change, plan_stage


def test_train_key_covers_its_helpers_but_not_figures():
    train = code_hashes("tasks.train")
    assert {"tasks.train", "tasks.components.network", "tasks.components.fit", "tasks.formats"} <= set(train)
    assert "tasks.figures" not in train
    assert "tasks.runtime.store" not in train  # machinery: where files go, not what they hold
    assert "tasks.formats" in code_hashes("tasks.figures")  # figures reads train's history format


def test_editing_a_helper_changes_the_hash_of_stages_that_use_it():
    edited = caching._read_source("tasks.components.network") + "\n# an edit\n"
    before = code_hashes("tasks.train")
    after = code_hashes("tasks.train", sources={"tasks.components.network": edited})
    assert before["tasks.components.network"] != after["tasks.components.network"]
    assert before["tasks.train"] == after["tasks.train"]
    assert code_hashes("tasks.generate") == code_hashes("tasks.generate", sources={"tasks.components.network": edited})


def test_relative_and_attribute_imports_are_followed():
    mods = caching.imported_project_modules(
        "tasks.x", "from .formats.window import read_window\nfrom tasks.components import metrics\nimport tasks.runtime.store\n")
    assert mods == {"tasks.formats.window", "tasks.components", "tasks.components.metrics", "tasks.runtime.store"}


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


def test_an_upstream_that_appears_or_goes_is_named_not_taken_for_a_deleted_entry():
    hybrid = inputs(upstream={"window": "w1", "ensemble": "e1"})  # e.g. evaluate with and without a packed ensemble
    assert explain_change(hybrid, inputs()) == "upstream no longer an input: ensemble"
    assert explain_change(inputs(), hybrid) == "new upstream: ensemble"
    assert explain_change(hybrid, inputs(upstream={"window": "w2"})) == (
        "upstream changed: window; upstream no longer an input: ensemble")
    members = inputs(upstream={"window": "w1", "window:member_splits": "m1"})  # two inputs from one stage
    assert explain_change(members, inputs(upstream={"window": "w1", "window:member_splits": "m2"})) == (
        "upstream changed: window (member splits)")
    stored = inputs(params={"train": {"epochs": 100, "lr": 0.001}, "statistical": ["ets", "theta"]})  # as JSON
    assert explain_change(stored, inputs(params={"train": {"epochs": 100, "lr": 0.001},
                                                 "statistical": ("ets", "theta")})) == "output missing (cache entry deleted)"
    anchored = inputs(params={"train": {"epochs": 100, "lr": 0.001}, "anchor": 24})  # a task's own argument
    assert explain_change(anchored, inputs(params={"train": {"epochs": 100, "lr": 0.001}, "anchor": 36}),
                          {"anchor": "anchor (the search's longest window)"}) == (
        "new parameters: anchor (the search's longest window) 24->36")


def plan(tmp_path, force=None, **over):
    i = inputs(**over)
    return plan_stage(tmp_path, "train", params=i["params"], upstream=i["upstream"], code=i["code"], env=i["env"], force=force)


def test_plan_reuses_only_a_verified_entry(tmp_path):
    p = plan(tmp_path)
    assert p.run and p.reason == "no cached output (first run)"

    def compute(w):
        w.path("model.pt").write_bytes(b"weights")

    store.build_entry(tmp_path, "train", p.key, p.key_inputs, compute)
    caching.record_latest([p])
    assert plan(tmp_path).run is False and plan(tmp_path).reason == "inputs unchanged"
    forced = plan(tmp_path, force="--refresh train")
    assert forced.run and forced.forced and forced.reason == "forced (--refresh train)"
    p.ref.file("model.pt").write_bytes(b"w")
    corrupt = plan(tmp_path)
    assert corrupt.run and corrupt.reason.startswith("output missing or corrupt: model.pt")
    changed = plan(tmp_path, params={"train": {"epochs": 7, "lr": 0.001}})
    assert changed.key != p.key and changed.reason == "new parameters: train.epochs 100->7"


def test_each_member_is_explained_against_its_own_previous_entry_not_the_last_one_recorded(tmp_path):
    members = [plan(tmp_path, params={"train": {"epochs": 100, "lr": 0.001, "seed": seed}}) for seed in (42, 43, 44)]
    caching.record_latest(members)  # one map over a sweep's members: the last recorded is seed 44
    again = plan(tmp_path, params={"train": {"epochs": 50, "lr": 0.001, "seed": 42}})
    assert again.reason == "new parameters: train.epochs 100->50"  # not "... seed 44->42"
    assert caching.recent_inputs(tmp_path, "train")[0] == members[-1].key_inputs
    caching.record_latest([plan(tmp_path, params={"train": {"epochs": e, "lr": 0.001}}) for e in range(40)])
    assert len(caching.recent_inputs(tmp_path, "train")) == caching.RECENT


def test_an_entry_that_went_bad_after_planning_is_rebuilt_not_reported_cached(tmp_path):
    from tasks.runtime.stages import build

    p = plan(tmp_path)
    store.build_entry(tmp_path, "train", p.key, p.key_inputs, lambda w: w.path("a").write_text("x"))
    reuse = plan(tmp_path)
    assert not reuse.run
    cached = build(reuse, lambda w: w.path("a").write_text("x"))
    assert cached.name == "Cached" and cached.is_completed()
    reuse.ref.file("a").unlink()  # goes bad between planning and the task
    rebuilt = build(reuse, lambda w: w.path("a").write_text("x"))
    assert rebuilt == {**reuse.ref.model_dump(), "built": True} and store.verify(reuse.ref.path) is None


def test_reasons_show_a_data_files_sha256_short_and_a_new_input_by_name():
    old, new = "a" * 64, "b" * 64
    reason = explain_change(inputs(params={"source": old}), inputs(params={"source": new}))
    assert reason == f"new parameters: source sha256:{'a' * 12}->sha256:{'b' * 12}"
    assert not re.search(r"[0-9a-f]{64}", reason)
    grown = inputs(params={"train": {"epochs": 100, "lr": 0.001}, "model": {"cell": "gru"}})
    assert explain_change(inputs(), grown) == "new parameters: model (a new input)"


def planned(tmp_path, source, run, build=True, **over):
    """Plan a train entry of `run` on data `source` (building it, as the run would), and record it."""
    i = inputs(**over)
    p = plan_stage(tmp_path, "train", params=i["params"], upstream=i["upstream"], code=i["code"], env=i["env"],
                   source=source, run_name=run)
    if build and p.run:
        store.build_entry(tmp_path, "train", p.key, p.key_inputs, lambda w: w.path("m").write_text(p.key))
    caching.record_latest([p])
    return p


def test_reasons_compare_with_the_previous_run_of_the_same_data_only(tmp_path):
    """The issue's first run on a new file: no diff against the unrelated run before it in the same
    output directory; a later run of the first file compares with that file's last run."""
    a, b = "/data/sales.csv", "/data/other.csv"
    assert planned(tmp_path, a, "run-1").reason == "no cached output (first run)"
    assert planned(tmp_path, b, "run-2", params={"train": {"epochs": 7, "lr": 0.1}},
                   upstream={"window": "w9"}).reason == "no cached output (first run on this data)"
    again = planned(tmp_path, a, "run-3", params={"train": {"epochs": 50, "lr": 0.001}})
    assert again.reason == "new parameters: train.epochs 100->50"  # run-1's, not run-2's (other data)
    assert planned(tmp_path, b, "run-4", params={"train": {"epochs": 7, "lr": 0.1}},
                   upstream={"window": "w9"}).reason == "inputs unchanged"


def test_a_stage_no_run_of_the_data_reached_is_not_called_a_first_run(tmp_path):
    """An interrupted run (or --until window) recorded its window only: the next run, which reuses
    that window, says the train stage's first build is due to an earlier run having stopped; a
    genuinely first run, and a run of other data, still say first run."""
    def window(source: str, run: str, seq_length: int = 20):
        p = plan_stage(tmp_path, "window", params={"window": {"seq_length": seq_length}}, upstream={}, code={},
                       env={}, source=source, run_name=run)
        caching.record_latest([p])

    src = "/data/sales.csv"
    window(src, "run-1")
    i = inputs()
    first = plan_stage(tmp_path, "train", params=i["params"], upstream=i["upstream"], code=i["code"], env=i["env"],
                       source=src, run_name="run-1")
    assert first.reason == "no cached output (first run)"  # run-1 itself made the window: it is the first
    window(src, "run-2")  # the same window entry, reused: recorded as run-2's, first used by run-1
    stopped = "no cached output (an earlier run of this data stopped before this stage)"
    assert planned(tmp_path, src, "run-2").reason == stopped
    window("/data/other.csv", "run-3", seq_length=24)
    assert planned(tmp_path, "/data/other.csv", "run-3", params={"train": {"epochs": 7, "lr": 0.1}}
                   ).reason == "no cached output (first run on this data)"


def test_an_entry_reused_from_an_older_run_says_how_it_differs_from_the_previous_run(tmp_path):
    """A grid-file sweep's window: reused (an older run built it), yet not the previous run's; the
    stage after it, recomputed for that reason, now reads as consistent with it."""
    src = "/data/sales.csv"
    planned(tmp_path, src, "run-1", upstream={"window": "w1"})
    planned(tmp_path, src, "run-2", upstream={"window": "w2"})
    back = planned(tmp_path, src, "run-3", upstream={"window": "w1"})
    assert not back.run
    assert back.reason == "an earlier run's entry; against the previous run: upstream changed: window"
    assert planned(tmp_path, src, "run-4", upstream={"window": "w1"}).reason == "inputs unchanged"


def test_a_stage_line_names_the_best_models_entry_and_how_many_entries_were_recomputed():
    from flows.report import stage_line

    row = {"stage": "train", "action": "recomputed", "reason": "new parameters: model.hidden_size 32->64",
           "entries": 20, "recomputed": 8, "featured": "built"}
    assert stage_line(row) == ("  train     recomputed new parameters: model.hidden_size 32->64 (the best model's; "
                               "8 of 20 entries recomputed)")
    assert stage_line({**row, "action": "reused", "reason": "inputs unchanged", "recomputed": 0, "featured": ""}) == (
        "  train     reused     inputs unchanged (all 20 entries reused)")
    assert stage_line({"stage": "window", "action": "reused", "reason": "inputs unchanged", "entries": 1}) == (
        "  window    reused     inputs unchanged")
