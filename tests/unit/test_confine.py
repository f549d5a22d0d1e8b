"""A served deployment's flow runs write and read only where `serve` said when it started
(tasks/runtime/confine.py): parameters pointing elsewhere are refused before anything is touched."""

from __future__ import annotations

import os

import pytest

from tasks.config import PipelineConfig, with_overrides
from tasks.errors import InputError
from tasks.runtime import confine
from tasks.runtime.stages import Run


@pytest.fixture
def served(tmp_path, monkeypatch):
    """`serve --data-path <tmp>/inbox/sales.csv --allow-data <tmp>/shared` with outputs under <tmp>/srv."""
    monkeypatch.setenv(confine.VARIABLE, "")  # recorded as unset, so the teardown removes what fix() sets
    for d in ("inbox", "shared", "srv", "elsewhere"):
        (tmp_path / d).mkdir()
    (tmp_path / "inbox" / "sales.csv").write_text("timestamp,value\n")
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.write_text("password,hunter2\n")
    cfg = PipelineConfig.model_validate({"data": {"data_path": str(tmp_path / "inbox" / "sales.csv")},
                                         "output": {"root": str(tmp_path / "srv" / "artifacts"),
                                                    "data_dir": str(tmp_path / "srv" / "data")}})
    c = confine.fix(cfg, (str(tmp_path / "shared"),))
    monkeypatch.setenv(confine.VARIABLE, c.to_env())  # as serve does; undone after the test
    assert c.data == (str(tmp_path / "inbox"), str(tmp_path / "shared"))
    return cfg


def run_with(cfg, **sections):
    return Run.start(with_overrides(cfg, sections), name="rnn-1")


def test_the_served_settings_and_places_under_them_are_allowed(served, tmp_path):
    confine.check(served)
    confine.check(with_overrides(served, {"output": {"root": str(tmp_path / "srv" / "artifacts" / "team-a")},
                                          "data": {"data_path": str(tmp_path / "shared" / "other.csv")}}))


@pytest.mark.parametrize("sections, field", [
    ({"output": {"root": "{tmp}/elsewhere/out"}}, "output.root"),
    ({"output": {"root": "{tmp}/srv/artifacts/../../elsewhere"}}, "output.root"),
    ({"output": {"data_dir": "{tmp}/elsewhere/data"}}, "output.data_dir"),
    ({"data": {"data_path": "{tmp}/elsewhere/secret.csv"}}, "data.data_path"),
    ({"data": {"data_path": "{tmp}/inbox/link.csv"}}, "data.data_path"),  # a symlink out of an allowed folder
    ({"search": {"mode": "{tmp}/elsewhere/members.json"}}, "search.mode"),
])
def test_a_run_pointed_outside_is_refused_in_one_line_before_anything_is_touched(served, tmp_path, sections, field):
    (tmp_path / "inbox" / "link.csv").symlink_to(tmp_path / "elsewhere" / "secret.csv")
    sections = {s: {k: v.format(tmp=tmp_path) for k, v in f.items()} for s, f in sections.items()}
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(InputError) as err:
        run_with(served, **sections)
    assert err.value.field == field and "\n" not in str(err.value)
    assert "hunter2" not in str(err.value)  # the file was never read
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, not even the served folders


def test_without_serve_nothing_is_confined(served, tmp_path, monkeypatch):
    monkeypatch.delenv(confine.VARIABLE)
    confine.check(with_overrides(served, {"output": {"root": str(tmp_path / "elsewhere" / "out")}}))


def test_serve_refuses_an_allowed_folder_that_is_not_one(tmp_path, monkeypatch):
    monkeypatch.delenv(confine.VARIABLE, raising=False)
    with pytest.raises(InputError, match="not a folder"):
        confine.fix(PipelineConfig(), (str(tmp_path / "missing"),))
    assert confine.VARIABLE not in os.environ
