"""Bad input on the command line: one line naming the option and the value, exit status 2, no
traceback, nothing written, and all of it before Prefect is even imported (so each case is fast).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ["--output-dir", "out", "--data-dir", "data"]
DATA = ["--data-path", "m.csv", "--time-column", "month", "--value-column", "sales"]


def monthly(n: int = 60) -> pd.DataFrame:
    dates = pd.date_range("2005-01-01", periods=n, freq="MS").strftime("%Y-%m-%d")
    return pd.DataFrame({"month": dates, "sales": (1000 + 100 * np.sin(np.arange(n) / 2)).round(2).astype(str)})


def _bad_value(df):
    df.loc[2, "sales"] = "twelve"
    return df


def _nan(df):
    df.loc[[4, 9], "sales"] = ""
    return df


def _duplicate(df):
    df.loc[5, "month"] = df.loc[4, "month"]
    return df


def _gap(df):
    return df.drop(index=7)


def _huge(df):
    df["sales"] = (1e40 * (1 + 0.1 * np.sin(np.arange(len(df))))).astype(str)
    return df


def _business_days_with_holidays():
    holidays = pd.DatetimeIndex(["2023-01-16", "2023-02-20", "2023-04-07", "2023-05-29"])
    days = pd.bdate_range("2023-01-02", periods=130).difference(holidays)[:126]
    return pd.DataFrame({"month": days.strftime("%Y-%m-%d"), "sales": (100 + np.arange(126) % 5).astype(str)})


def _days_with_offsets_no_zone_has():
    """Local midnights written with +01:00 and +03:30 in turn: no zone's daylight saving does that."""
    days = pd.date_range("2024-03-20", periods=40, freq="D")
    return pd.DataFrame({"month": [f"{d:%Y-%m-%d}T00:00{'+01:00' if i % 2 else '+03:30'}" for i, d in enumerate(days)],
                         "sales": np.arange(40.0).astype(str)})


# id -> (extra args, how to write m.csv (None: no file), what the one line must contain)
CASES = {
    "seq-length-0": (["--seq-length", "0"], None, ["--seq-length=0", "greater than or equal to 1"]),
    "epochs-0": (["--epochs", "0"], None, ["--epochs=0"]),
    "epochs-negative": (["--epochs", "-1"], None, ["--epochs=-1"]),
    "train-fraction-above-1": (["--train-fraction", "1.5"], None, ["--train-fraction=1.5", "less than 1"]),
    "train-fraction-0": (["--train-fraction", "0"], None, ["--train-fraction=0", "greater than 0"]),
    "lr-negative": (["--lr", "-0.1"], None, ["--lr=-0.1", "greater than 0"]),
    "season-length-0": (["--season-length", "0"], None, ["--season-length=0"]),
    "fill-unknown": (["--fill", "mean"], None, ["--fill='mean'"]),
    "device-cuda-missing": (["--device", "cuda"], None, ["--device='cuda'", "CUDA is not available"]),
    "output-dir-unwritable": (["--output-dir", "/proc/forbidden"], None, ["--output-dir='/proc/forbidden'",
                                                                          "cannot be created"]),
    "output-dir-is-a-file": (["--output-dir", "m.csv"], monthly, ["--output-dir='m.csv'", "not a directory"]),
    "data-dir-under-a-file": (["--data-dir", "m.csv/data"], monthly, ["--data-dir='m.csv/data'", "not a directory"]),
    "config-missing": (["--config", "nope.json"], None, ["--config='nope.json'", "cannot read"]),
    "data-path-missing": (["--data-path", "missing.csv"], None, ["--data-path='missing.csv'", "file not found"]),
    "data-file-empty": (DATA, "", ["--data-path='m.csv'", "empty file"]),
    "data-file-header-only": (DATA, "month,sales\n", ["--data-path='m.csv'", "no rows"]),
    "value-column-misspelt": ([*DATA, "--value-column", "sale"], monthly,
                              ["--value-column='sale'", "did you mean 'sales'"]),
    "time-column-misspelt": ([*DATA, "--time-column", "mnth"], monthly,
                             ["--time-column='mnth'", "did you mean 'month'"]),
    "non-numeric-values": (DATA, lambda: _bad_value(monthly()), ["--value-column='sales'", "row 3", "'twelve'"]),
    "missing-values": (DATA, lambda: _nan(monthly()), ["--value-column='sales'", "2 missing", "rows 5, 10",
                                                        "--fill interpolate"]),
    "duplicate-times": (DATA, lambda: _duplicate(monthly()), ["--time-column='month'", "duplicate times",
                                                               "2005-05-01"]),
    "irregular-spacing": (DATA, lambda: _gap(monthly()), ["--time-column='month'", "irregular spacing",
                                                          "expected 1 month between 2005-07-01 and 2005-09-01"]),
    "series-too-short": (DATA, lambda: monthly(12), [
        "error: --seq-length=20: the series in m.csv has 12 points, but --seq-length 20 and --horizon 1 need at "
        "least 22 (the windows plus the train/validation/test split); lower --seq-length (--seq-length 10 fits with "
        "--horizon 1)"]),
    "series-too-short-for-window": ([*DATA, "--seq-length", "60"], monthly, [
        "error: --seq-length=60: the series in m.csv has 60 points, but --seq-length 60 and --horizon 1 need at "
        "least 62 (the windows plus the train/validation/test split); lower --seq-length (--seq-length 58 fits with "
        "--horizon 1)"]),
    "values-beyond-float32": (DATA, lambda: _huge(monthly(72)), ["--value-column='sales'", "beyond float32's range",
                                                                  "the largest 1.09"]),
    "business-days-missing-holidays": (DATA, _business_days_with_holidays, [
        "--time-column='month'", "expected 1 business day between 2023-01-13 and 2023-01-17",
        "(2023-01-16 missing; 4 missing in all)", "--fill-missing-dates", "--holidays"]),
    "added-dates-need-a-value-fill": ([*DATA, "--fill-missing-dates"], lambda: _gap(monthly()),
                                      ["--value-column='sales'", "1 added date without values", "--fill"]),
    "mixed-offsets-need-a-zone": (DATA, _days_with_offsets_no_zone_has, ["--time-column='month'", "+01:00, +03:30",
                                                                          "--time-zone"]),
    "time-zone-unknown": ([*DATA, "--time-zone", "Mars/Olympus"], monthly, ["--time-zone='Mars/Olympus'",
                                                                            "not a time zone"]),
    "holidays-not-dates": ([*DATA, "--holidays", "2023-13-45"], monthly, ["--holidays='2023-13-45'", "not a date"]),
    "unknown-option": (["--epoch", "3"], None, [
        "error: unknown option --epoch; did you mean --epochs? (see: python flows/rnn_flow.py --help)"]),
    "no-server-at-the-configured-url": ([], None, [  # run_cli points PREFECT_API_URL at a closed port
        "error: no server answers at PREFECT_API_URL=http://127.0.0.1:9/api; start one with `python "
        "flows/rnn_flow.py server` (or `prefect server start`), or point PREFECT_API_URL at a running one"]),
    "reference-unknown": (["--references", "ets,prophet"], None, ["--references='prophet'", "'ets', 'theta' or 'arima'"]),
    "reference-twice": (["--references", "ets,ets"], None, ["--references='ets,ets'", "each reference once"]),
    "gate-baseline-unknown": (["--gate-baseline", "worst"], None, ["--gate-baseline='worst'", "'best', 'naive'"]),
    "gate-baseline-not-computed": (["--references", "theta", "--gate-baseline", "ets"], None,
                                   ["--gate-baseline='ets'", "ets is not among the references (theta)",
                                    "add it to --references"]),
    "value-column-without-data": (["--value-column", "salez"], None,
                                  ["--value-column='salez'", "describes a data file", "add --data-path"]),
    "horizon-leaves-the-search-no-validation": ([*DATA, "--horizon", "40"], lambda: monthly(144),
                                                ["--horizon=40", "(144 points) leaves the search no validation origins",
                                                 "longest window (24 points)", "--horizon 21 fits; or --search off"]),
    "noise-with-a-data-file": ([*DATA, "--noise", "0.1"], monthly,
                               ["--noise=0.1", "sets the generated sine, and --data-path replaces it"]),
    "dask-address-on-the-local-runner": (["--dask-address", "tcp://127.0.0.1:8786"], None,
                                         ["--dask-address='tcp://127.0.0.1:8786'", "applies to --runner dask only"]),
    "fill-missing-dates-without-data": (["--fill-missing-dates"], None,
                                        ["--fill-missing-dates: describes a data file"]),
    "data-path-empty": (["--data-path", ""], None, ["--data-path='': is empty"]),
    "gate-baseline-references-off": (["--references", "none", "--gate-baseline", "theta"], None,
                                     ["--gate-baseline='theta'", "not among the references (none)"]),
}


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with its content hash (directories as 'dir')."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # never reached
    return subprocess.run([sys.executable, str(ROOT / "flows" / "rnn_flow.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    args, content, expected = CASES[case]
    if case == "device-cuda-missing" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    if content is not None:
        text = content if isinstance(content, str) else content().to_csv(index=False)
        (tmp_path / "m.csv").write_text(text)
    before = snapshot(tmp_path)
    proc = run_cli(tmp_path, *OUT, *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    for part in expected:
        assert part in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert snapshot(tmp_path) == before  # no output root, no data dir, no probe left behind


def test_check_refuses_the_dask_runner_without_a_server_as_the_run_does(tmp_path):
    line = ("error: --runner='dask': Dask workers need a running Prefect server to report to, and none answers at "
            "PREFECT_API_URL=http://127.0.0.1:9/api; start one with `python flows/rnn_flow.py server` (or "
            "`prefect server start`), or point PREFECT_API_URL at a running one")
    for args in (["check", *OUT, "--runner", "dask"], [*OUT, "--runner", "dask"]):
        proc = run_cli(tmp_path, *args)
        assert (proc.returncode, proc.stderr.strip().splitlines(), proc.stdout) == (2, [line], ""), args
    assert not any(tmp_path.iterdir())


def test_rollback_without_a_previous_champion_names_the_output_dir(tmp_path):
    proc = run_cli(tmp_path, "rollback", "--output-dir", "out")
    assert (proc.returncode, proc.stderr.strip().splitlines()) == (2, [
        f"error: --output-dir='{tmp_path / 'out'}': its model registry (models/registry.json) has no previous "
        "champion to roll back to"])
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(tmp_path):
    proc = run_cli(tmp_path, *OUT, "--data-path", "missing.csv", "--debug")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("error: --data-path=")


def test_an_existing_output_root_is_left_as_it_was(tmp_path):
    (tmp_path / "out" / "runs").mkdir(parents=True)
    (tmp_path / "out" / "runs" / "keep.txt").write_text("x")
    (tmp_path / "m.csv").write_text(_gap(monthly()).to_csv(index=False))
    before = snapshot(tmp_path)
    proc = run_cli(tmp_path, *OUT, *DATA)
    assert proc.returncode == 2 and "irregular spacing" in proc.stderr
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- exact lines, in-process
# flows.commands.main as the script calls it, in this process (milliseconds each): the first line on
# stderr, exactly, and exit status 2. A run that got past validation would fail the test instead.

def semicolon_csv() -> str:
    return monthly(60).to_csv(index=False, sep=";")


def with_store(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(store="a")[["store", "month", "sales"]]


EXACT = {
    "misspelt-option": (["--epoch", "3"], None,
                        "unknown option --epoch; did you mean --epochs? (see: python flows/rnn_flow.py --help)"),
    "sweep-with-a-search": (["sweep", *OUT, "--grid", "cell=gru,lstm", "--search", "on"], None,
                            "--search='on': a sweep trains one model per member of its grid; a search is a run of its "
                            "own (leave --search out)"),
    "sweep-grid-and-option-both-set": (["sweep", *OUT, "--grid", "cell=gru,lstm", "--cell", "lstm"], None,
                                       "--cell='lstm': the grid (--grid cell=gru,lstm) sets it for every member; give "
                                       "it in one place"),
    "prefect-yaml-without-a-deployment": (["check", "--prefect-yaml", "prefect.yaml"], None,
                                          "--prefect-yaml='prefect.yaml': says where a deployment is declared: add "
                                          "--deployment NAME to check one"),
    "another-subcommands-option": (["check", "--grid", "cell=gru,lstm"], None,
                                   "--grid is an option of sweep, not of check (see: python flows/rnn_flow.py check "
                                   "--help)"),
    "options-of-several": (["rollback", "--epochs", "3"], None,
                           "--epochs is an option of run, sweep, check and serve, not of rollback (see: python "
                           "flows/rnn_flow.py rollback --help)"),
    "serve-without-a-schedule": (["serve", "--epochs", "3"], None,
                                 "serve needs a schedule: --cron CRON or --interval SECONDS (it replaces the "
                                 "deployment's schedules) (see: python flows/rnn_flow.py serve --help)"),
    "misspelt-serve-option": (["serve", "--intervall", "60"], None,
                              "unknown option --intervall; did you mean --interval? "
                              "(see: python flows/rnn_flow.py serve --help)"),
    "misspelt-subcommand": (["srve"], None, "unknown subcommand 'srve'; did you mean serve? (subcommands: run, sweep, "
                                            "server, check, serve, rollback, clean) (see: python flows/rnn_flow.py --help)"),
    "missing-value": (["--epochs"], None, "--epochs: expected one argument (see: python flows/rnn_flow.py --help)"),
    "horizon-too-long": (["--data-path", "m.csv", "--time-column", "month", "--value-column", "sales",
                          "--horizon", "60"], lambda: monthly(120),
                         "--horizon=60: the series in m.csv has 120 points, but --seq-length 20 and --horizon 60 need "
                         "at least 154 (the windows plus the train/validation/test split); lower --horizon or "
                         "--seq-length (--horizon 17 fits with --seq-length 20)"),  # 17: the search's
    # longest window (24) still leaves validation origins (horizon-leaves-the-search-no-validation)
    "horizon-too-long-single-model": (["--data-path", "m.csv", "--time-column", "month", "--value-column", "sales",
                                       "--search", "off", "--horizon", "60"], lambda: monthly(120),
                                      "--horizon=60: the series in m.csv has 120 points, but --seq-length 20 and "
                                      "--horizon 60 need at least 154 (the windows plus the train/validation/test "
                                      "split); lower --horizon or --seq-length (--horizon 44 fits with --seq-length "
                                      "20)"),
    "window-leaves-no-validation": (["--data-path", "m.csv", "--time-column", "month", "--value-column", "sales",
                                     "--search", "off", "--seq-length", "112"], lambda: monthly(120),
                                    "--seq-length=112: the windows leave the series in m.csv (120 points) no "
                                    "validation origins, which early stopping and a search rank by: --seq-length 111 "
                                    "fits (or --val-fraction 0: no validation)"),
    "no-value-error-prefix": (["--levels", "0.8,1.5"], None,
                              "--levels='0.8,1.5': levels must be distinct numbers between 0 and 1 (e.g. 0.8,0.95)"),
    "time-column-not-given": (["--data-path", "m.csv", "--value-column", "sales"], monthly,
                              "--time-column='timestamp': no such column; did you mean 'month'? "
                              "(columns: month, sales)"),
    "value-column-not-given": (["--data-path", "m.csv", "--time-column", "month"], monthly,
                               "--value-column='value': no such column; did you mean 'sales'? (columns: month, sales)"),
    "id-column-misspelt": (["--data-path", "m.csv", "--time-column", "month", "--value-column", "sales",
                            "--id-column", "stor"], lambda: with_store(monthly()),
                           "--id-column='stor': no such column; did you mean 'store'? (columns: store, month, sales)"),
    "value-column-unlike-any": (["--data-path", "m.csv", "--time-column", "month", "--value-column", "nope"],
                                monthly, "--value-column='nope': no such column (columns: month, sales)"),
    "semicolon-file": (["--data-path", "m.csv", "--time-column", "month", "--value-column", "sale"], semicolon_csv,
                       "--value-column='sale': no such column; did you mean 'sales'? (columns: month, sales)"),
    "until-unknown": (["--until", "figure"], None,
                      "--until='figure': expected one of generate, window, train, evaluate, figures, forecast"),
    "cell-unknown": (["--cell", "transformer"], None,
                     "--cell='transformer': Input should be 'auto', 'rnn', 'gru' or 'lstm'"),
    "reference-unknown": (["--references", "ets,foo"], None, "--references='foo': Input should be 'ets', 'theta' or "
                          "'arima' (a comma-separated list of them, or none alone)"),
    "horizon-0": (["--horizon", "0"], None, "--horizon=0: Input should be greater than or equal to 1"),
    "keep-negative": (["clean", "--keep", "-1"], None, "--keep=-1: must be 0 or more"),
    "server-action-unknown": (["server", "begin"], None, "server action='begin': expected one of start, stop, status"),
}


@pytest.fixture
def cli_in(tmp_path, monkeypatch):
    """flows.commands.main, run in tmp_path; any subcommand that would get past its checks fails the test."""
    from flows import commands

    for name in commands.HANDLERS:
        if name != "check":
            monkeypatch.setitem(commands.HANDLERS, name, lambda inv, info: pytest.fail(f"{inv.command} started"))
    monkeypatch.chdir(tmp_path)
    return commands.main


@pytest.mark.parametrize("case", list(EXACT))
def test_each_error_is_one_exact_line_and_exit_2(cli_in, tmp_path, capsys, case):
    args, content, line = EXACT[case]
    if content is not None:
        made = content()
        (tmp_path / "m.csv").write_text(made if isinstance(made, str) else made.to_csv(index=False))
    assert cli_in(args if args[0] in ("serve", "clean", "srve", "sweep", "server", "check", "rollback") else [*OUT, *args]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {line}"]


def test_check_reads_a_sweep_deployment_as_the_sweep_flow_would(cli_in, tmp_path, capsys):
    import yaml

    sweep = {"entrypoint": "flows/rnn_flow.py:rnn_sweep",
             "parameters": {"config": {"train": {"epochs": 3}}, "grid": [{"model.cell": "gru"}, {"cell": "lstm"}]}}
    deployments = [{"name": "sweep", **sweep},
                   {"name": "bad-member", **sweep, "parameters": {"grid": [{"model.cell": "tcn"}]}},
                   {"name": "no-members", **sweep, "parameters": {"grid": []}},
                   {"name": "searching", **sweep, "parameters": {"config": {"search": {"mode": "on"}},
                                                                 "grid": [{"cell": "gru"}]}},
                   {"name": "grid-on-the-pipeline", "entrypoint": "flows/rnn_flow.py:rnn_pipeline",
                    "parameters": {"grid": [{"cell": "gru"}]}}]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"deployments": deployments}))
    check = ["check", "--prefect-yaml", "p.yaml", "--deployment"]
    assert cli_in([*check, "sweep"]) == 0
    assert capsys.readouterr().out.strip() == ("ok: the parameters of deployment 'sweep' are valid (the generated sine; "
                                               "2 sweep members)")
    for name, line in [("bad-member", "grid='model.cell=tcn': Input should be 'auto', 'rnn', 'gru' or 'lstm'"),
                       ("no-members", "grid='[]': no members"),
                       ("searching", "config.search.mode='on': a sweep trains one model per member of its grid; a "
                                     "search is a run of its own (leave --search out)"),
                       ("grid-on-the-pipeline", "parameter 'grid' is not one of rnn_pipeline's (config, refresh, until, "
                                                "no_cache, promote, promote_metric, promote_margin)")]:
        assert cli_in([*check, name]) == 2
        assert capsys.readouterr().err.splitlines() == [f"error: p.yaml, deployment {name!r}: {line}"]
    assert cli_in([*check, "nope"]) == 2  # the deployment named once
    assert capsys.readouterr().err.splitlines() == [
        "error: p.yaml, deployment 'nope': not a deployment of p.yaml (deployments: sweep, bad-member, no-members, "
        "searching, grid-on-the-pipeline)"]


def test_choices_take_any_case_and_a_semicolon_file_is_read(cli_in, tmp_path, capsys):
    (tmp_path / "m.csv").write_text(semicolon_csv())
    assert cli_in(["check", *OUT, "--cell", "LSTM", "--normalize", "Window", "--until", "Evaluate",
                   "--promote-metric", "MSE", *DATA]) == 0
    assert capsys.readouterr().out.strip() == "ok: the options are valid (m.csv: 1 series of 60 points, frequency MS)"
    from flows.subcommands import parse

    inv = parse(["--cell", "LSTM", "--device", "CPU", "--until", "Evaluate", "--promote-metric", "MSE"])
    assert (inv.config.model.cell, inv.config.train.device, inv.controls["until"], inv.controls["promote_metric"]) == (
        "lstm", "cpu", "evaluate", "mse")


def test_help_lists_the_subcommands_groups_by_stage_and_shows_every_default(capsys):
    from flows.commands import main
    from flows.subcommands import SUBCOMMANDS

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    listed = text.split("subcommands", 1)[1].split("options:", 1)[0]
    for name, sub in SUBCOMMANDS.items():
        assert f"  {name}  " in listed or f"  {name} " in listed, name
    assert set(SUBCOMMANDS) >= {"run", "server", "check", "serve", "rollback", "clean"}
    groups = [line for line in text.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert [g.split(" ", 1)[0].rstrip(":") for g in groups[1:]] == [
        "options", "data", "window", "model", "train", "eval", "search", "runner", "output", "run"]
    entries: list[str] = []  # one per option: its line and the wrapped lines under it
    for line in text.split("options:", 1)[1].splitlines():
        if line.startswith("  -"):
            entries.append(line)
        elif line.startswith("   ") and entries:
            entries[-1] += " " + line.strip()
    assert len(entries) >= 48
    for entry in entries:
        assert "(default: " in " ".join(entry.split()) or entry.startswith("  -h, --help"), entry


@pytest.mark.parametrize("sub", ["serve", "check", "server", "clean", "rollback"])
def test_every_subcommand_has_help_with_its_defaults(capsys, sub):
    from flows.commands import main

    with pytest.raises(SystemExit) as done:
        main([sub, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python flows/rnn_flow.py {sub}") and "(default:" in text


def test_a_large_parquet_file_is_checked_by_its_columns_before_the_run(cli_in, tmp_path, capsys, monkeypatch):
    """Above FULL_CHECK_ROWS rows the check reads the footer and the columns, never every row (a
    10M-row file read whole here cost ~1.5 GB before the first stage); below it, every row."""
    from flows import preflight
    from tasks.components import scan

    monthly().to_parquet(tmp_path / "m.parquet")
    args = ["check", *OUT, "--data-path", "m.parquet", "--time-column", "month", "--value-column", "sales"]
    read = []
    real = scan.read_table
    monkeypatch.setattr(scan, "read_table", lambda path: read.append(path) or real(path))
    assert cli_in(args) == 0 and len(read) == 1  # 60 rows: read whole, and summarised
    assert "1 series of 60 points" in capsys.readouterr().out
    monkeypatch.setattr(preflight, "FULL_CHECK_ROWS", 59)
    assert cli_in(args) == 0 and len(read) == 1  # not read again
    assert cli_in([*args[:-1], "sale"]) == 2  # the columns are still checked
    assert "did you mean 'sales'?" in capsys.readouterr().err


def test_a_stage_typed_as_a_subcommand_names_the_command_with_until(cli_in, capsys):
    assert cli_in(["forecast", "--data-path", "sales.csv"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: 'forecast' is a stage, not a subcommand: a run does every stage up to --until (default figures), and "
        "--until forecast forecasts past the end of every series: python flows/rnn_flow.py --until forecast "
        "--data-path sales.csv (see: python flows/rnn_flow.py --help)"]
    assert cli_in(["Train"]) == 2
    assert "--until train stops after the train stage: python flows/rnn_flow.py --until train [options]" in (
        capsys.readouterr().err)


def test_a_missing_data_file_is_named_by_its_absolute_path_with_the_closest_file_beside_it(cli_in, tmp_path, capsys):
    (tmp_path / "sales.csv").write_text(monthly().to_csv(index=False))
    (tmp_path / "notes.md").write_text("not data")
    assert cli_in([*OUT, "--data-path", "sale.csv", "--time-column", "month", "--value-column", "sales"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --data-path='sale.csv': file not found (looked for {tmp_path / 'sale.csv'}); did you mean "
        "'sales.csv'?"]
    assert cli_in([*OUT, "--data-path", "nowhere/sales.csv"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --data-path='nowhere/sales.csv': file not found: no directory {tmp_path / 'nowhere'}"]
    assert cli_in([*OUT, "--data-path", "note.md"]) == 2  # only data files are suggested
    assert capsys.readouterr().err.splitlines() == [
        f"error: --data-path='note.md': file not found (looked for {tmp_path / 'note.md'})"]
    absolute = str(tmp_path / "gone.csv")  # typed absolute: not said twice
    assert cli_in([*OUT, "--data-path", absolute]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: --data-path={absolute!r}: file not found"]


def test_every_missing_column_is_named_at_once(cli_in, tmp_path, capsys):
    (tmp_path / "m.csv").write_text(with_store(monthly()).to_csv(index=False))
    assert cli_in([*OUT, "--data-path", "m.csv", "--time-column", "mnth", "--value-column", "sale",
                   "--id-column", "shop"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --time-column='mnth': no such column (did you mean 'month'?); --value-column='sale': no such column "
        "(did you mean 'sales'?); --id-column='shop': no such column; the file's columns: store, month, sales"]


def test_a_python_without_the_project_installed_says_how_to_run_it_in_one_line(tmp_path):
    """`python flows/rnn_flow.py` under an interpreter that cannot import the project's
    dependencies (here: the test's own, without its site-packages): one line with the fix, exit 2."""
    proc = subprocess.run([sys.executable, "-S", str(ROOT / "flows" / "rnn_flow.py"), "--epochs", "3"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"error: {sys.executable} (Python 3.") and "cannot import 'pydantic'" in line
    assert "virtualenv" in line and list(tmp_path.iterdir()) == []


def test_output_piped_into_a_reader_that_left_ends_quietly(tmp_path):
    """`python flows/rnn_flow.py ... | head -2`: the reader closes the pipe before the command
    writes; no BrokenPipeError traceback, and the status a shell gives a command stopped by SIGPIPE."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, str(ROOT / "flows" / "rnn_flow.py"), "check", *OUT], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # no reader left before its first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err
