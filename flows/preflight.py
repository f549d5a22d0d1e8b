"""Preflight: what pydantic cannot check, checked before Prefect starts or anything trains.

`preflight(cfg)` is one pass over the rules, each next to the kind of thing it checks: the
settings against each other (a file's settings without a file, Dask's without Dask, a search's
members), the data file (its path, its columns, its series against the windows, the split and
the search), and the directories written. Every refusal is an InputError naming the option.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flows.options import FLAG_OF_FIELD
from tasks.config import PipelineConfig, WindowConfig, members_of
from tasks.errors import InputError

# a larger source (or a directory) is checked here by its columns only, and row by row in the ingest
# stage, bucket by bucket: reading 10M rows whole before the run would take ~1.5 GB
FULL_CHECK_BYTES = 32 * 2**20  # CSV
FULL_CHECK_ROWS = 1_000_000  # Parquet, a file or a dataset (its footers give the count)


def preflight(cfg: PipelineConfig) -> dict:
    """Check what pydantic cannot before any training: device, data file, output dirs (InputError).

    Returns what was learnt about the data file (ingest's summary), {} for generated data.
    """
    if cfg.train.device != "auto":
        from tasks.components.network import resolve_device

        resolve_device(cfg.train.device)
    info: dict = {}
    check_runner(cfg)
    if cfg.data.data_path is None:
        check_generated(cfg)
    else:
        if not str(cfg.data.data_path).strip():
            raise InputError("data_path", cfg.data.data_path, "is empty: give the path of a CSV or Parquet file")
        check_unused(cfg.data, GENERATOR_ONLY, "data", "sets the generated sine, and --data-path replaces it with "
                                                     "your file: leave it out")
        check_data_path(cfg.data.data_path)
        check_named_columns(cfg)
        from tasks.components import ingest, scan
        from tasks.components.calendar import check_forecast_range

        kind = scan.source_kind(cfg.data.data_path)
        path = Path(cfg.data.data_path)
        source = scan.open_source(path)
        # the columns in every file (a dataset's footers), before any row is read
        scan.check_columns(source, time_column=cfg.data.time_column, value_column=cfg.data.value_column,
                           id_column=cfg.data.id_column, group_column=cfg.data.group_column)
        # a source too big to read here has every row checked in the ingest stage (bucket by bucket)
        if (kind == "csv" and path.stat().st_size <= FULL_CHECK_BYTES) or (
                kind == "parquet" and sum(source.rows) <= FULL_CHECK_ROWS):
            try:
                _, info = ingest.prepare_series(
                    scan.read_table(path), time_column=cfg.data.time_column,
                    value_column=cfg.data.value_column, id_column=cfg.data.id_column, fill=cfg.data.fill,
                    fill_missing_dates=cfg.data.fill_missing_dates, time_zone=cfg.data.time_zone,
                    holidays=cfg.data.holidays, dayfirst=cfg.data.dayfirst,
                )
            except InputError as exc:
                if exc.field != "series_length":
                    raise
                raise InputError("data_path", cfg.data.data_path, exc.message) from None  # name the option
            check_forecast_range(info["end"], info["frequency"], cfg.window.horizon, cfg.data.data_path)
            search = search_windows(cfg, info)
            check_series_length(info["lengths"], cfg.window, cfg.data.data_path, search and search.ranks)
            check_search_windows(cfg, info, search)
            check_validation_origins(cfg, info, search)
    check_search(cfg)
    check_writable(cfg.output.root, "output.root")
    check_writable(cfg.output.data_dir, "output.data_dir")
    return info


DATA_SUFFIXES = (".csv", ".txt", ".parquet", ".pq")


def check_data_path(path: str) -> None:
    """A --data-path that does not exist: InputError naming it as typed, the absolute path it was
    looked for at when that differs (relative paths are read from the current directory) and the
    closest file or directory beside it ("did you mean 'sales.csv'?"), or the directory that is
    missing."""
    typed = Path(path).expanduser()
    if typed.exists():
        return
    where = typed.absolute()
    if not where.parent.is_dir():
        raise InputError("data_path", path, f"file not found: no directory {where.parent}")
    names = [q.name for q in where.parent.iterdir() if q.is_dir() or q.suffix.lower() in DATA_SUFFIXES]
    close = difflib.get_close_matches(where.name, names, n=1, cutoff=0.6)
    hint = f"; did you mean {str(typed.parent / close[0]) if typed.parent != Path('.') else close[0]!r}?" if close else ""
    looked = "" if str(where) == path else f" (looked for {where})"  # an absolute path typed: said once
    raise InputError("data_path", path, f"file not found{looked}{hint}")


COLUMN_FIELDS = ("time_column", "value_column", "id_column", "group_column")


def check_named_columns(cfg: PipelineConfig) -> None:
    """Every column option that names no column of the file, in one InputError (the first named by
    its option, the others after "also"), each with the column it most likely means and the file's
    columns once. A single missing column is left to the ingest's own check (the same words)."""
    from tasks.components import ingest, scan

    columns = scan.source_columns(cfg.data.data_path)
    named = {f: getattr(cfg.data, f) for f in COLUMN_FIELDS if getattr(cfg.data, f) is not None}
    missing = [(f, name) for f, name in named.items() if name not in columns]
    if len(missing) < 2:
        return
    try:
        head = next(scan.scan(cfg.data.data_path, columns, batch_rows=20))
    except InputError:  # no rows: the suggestions go by names alone
        head = pd_frame(columns)

    def worded(field: str, name: str) -> str:
        close = ingest.suggest_column(head, field, name)
        return "no such column" + (f" (did you mean {close!r}?)" if close else "")

    (field, name), *others = missing
    also = "".join(f"; {FLAG_OF_FIELD.get(f, f)}={n!r}: {worded(f, n)}" for f, n in others)
    shown = ", ".join(c if c.isprintable() else repr(c) for c in columns)
    raise InputError(field, name, f"{worded(field, name)}{also}; the file's columns: {shown}")


def pd_frame(columns: list[str]):
    """An empty DataFrame with `columns` (what suggestions read when the file has no rows)."""
    import pandas as pd

    return pd.DataFrame(columns=columns)


FILE_ONLY = ("time_column", "value_column", "id_column", "group_column", "fill", "fill_missing_dates", "time_zone",
             "holidays", "dayfirst")  # DataConfig fields that describe a data file


GENERATOR_ONLY = ("n_points", "n_series", "x_max", "amplitude", "period", "noise", "trend", "components",
                  "seed")  # DataConfig fields of the generated sine
DASK_ONLY = ("address", "threads_per_worker")  # RunnerConfig fields that only --runner dask reads


def check_generated(cfg: PipelineConfig) -> None:
    """Without a data file, a setting that describes one (its columns, repairs, zone, holidays) is
    refused rather than ignored: InputError naming the first such setting that differs from its
    default (the run would generate the tutorial's sine and never read it)."""
    check_unused(cfg.data, FILE_ONLY, "data", "describes a data file, and none is given: add --data-path (without "
                                              "it the run generates the tutorial's sine)")


def check_runner(cfg: PipelineConfig) -> None:
    """A Dask setting (--dask-address, --threads-per-worker) with the local runner is refused
    rather than ignored (InputError)."""
    if cfg.runner.kind != "dask":
        check_unused(cfg.runner, DASK_ONLY, "runner", "applies to --runner dask only: add --runner dask")


def check_unused(section, names: tuple[str, ...], prefix: str, reason: str) -> None:
    """InputError(`prefix`.name, value, reason) for the first of `names` that `section` sets to
    something other than its default: a setting this run would never read."""
    defaults = type(section)()
    for name in names:
        value = getattr(section, name)
        if value != getattr(defaults, name):
            raise InputError(f"{prefix}.{name}", value, reason)


def check_search(cfg: PipelineConfig) -> None:
    """A search's members file must hold valid members; a search is one ensemble for all series,
    so it does not go with per-group models."""
    mode = cfg.search.mode
    if mode in ("on", "off", "auto"):
        if mode == "on" and cfg.data.group_column:
            raise InputError("search.mode", mode, "a search trains one ensemble for all series; per-group models "
                             "(--group-column) need --search off (auto turns it off for them)")
        return
    try:
        raw = json.loads(Path(mode).read_text())
    except (OSError, ValueError) as exc:
        raise InputError("search.mode", mode, f"cannot read a JSON file of members ({exc})") from None
    members_of(cfg, raw, "search.mode", mode)
    if cfg.data.group_column:
        raise InputError("search.mode", mode, "a search trains one ensemble for all series; per-group models "
                         "(--group-column) need --search off")


def check_series_length(lengths: dict[str, int], w: WindowConfig, path: str,
                        ranks: Callable[[int], bool] | None = None) -> None:
    """Refuse a series too short for the windows and the split, naming the options to lower and by how much.

    ranks: for a built-in search (SearchWindows.ranks), whether a horizon leaves its longest window
    validation origins: a horizon suggested must pass it too."""
    from tasks.components.split import min_series_length

    def need(seq_length: int, horizon: int) -> int:
        return min_series_length(seq_length, horizon, w.train_fraction, w.val_fraction)

    sid, n = min(lengths.items(), key=lambda kv: kv[1])
    L, H = w.seq_length, w.horizon
    if n >= need(L, H):
        return
    who = f"the series in {path}" if len(lengths) == 1 else f"series {sid!r} in {path}"
    option, value = ("window.horizon", H) if H > 1 else ("window.seq_length", L)
    problem = (f"{who} has {n} points, but --seq-length {L} and --horizon {H} need at least {need(L, H)} "
               "(the windows plus the train/validation/test split)")
    if n < need(1, 1):
        raise InputError(option, value, f"{problem}; it is too short for any window")
    fits = []
    if H > 1 and (ok := [h for h in range(1, H) if need(L, h) <= n and (ranks is None or ranks(h))]):
        fits.append(f"--horizon {max(ok)} fits with --seq-length {L}")
    if (most_l := n - need(1, H) + 1) >= 1:
        fits.append(f"--seq-length {most_l} fits with --horizon {H}")
    lower = "--horizon or --seq-length" if H > 1 else "--seq-length"
    raise InputError(option, value, f"{problem}; lower {lower} ({'; '.join(fits)})")


@dataclass(frozen=True)
class SearchWindows:
    """The built-in search's windows on a file (--search on, or auto for a file, --seq-length left
    to the search): one and two seasons and 20 points (tasks.components.search.window_lengths) of
    its shortest series, `series_id` with `points` points; its members are ranked on the
    validation origins of the longest. window: the resolved window settings."""

    series_id: str
    points: int
    season: int | None
    window: WindowConfig
    longer: int | None = None  # a second season of the calendar (sub-daily data's week)

    def longest(self, horizon: int) -> int:
        """The longest window the search reads for `horizon`."""
        from tasks.components.search import window_lengths

        return max(window_lengths(self.season, self.points, horizon, longer=self.longer))

    def ranks(self, horizon: int) -> bool:
        """Whether the longest window's split holds validation origins at `horizon`."""
        from tasks.components.split import build_split

        w = self.window
        try:
            return build_split([self.points], [self.series_id], self.longest(horizon), horizon, w.train_fraction,
                               w.val_fraction, calibration=w.calibration).count("val") > 0
        except ValueError:
            return False


def search_windows(cfg: PipelineConfig, info: dict) -> SearchWindows | None:
    """The built-in search's windows on the file of `info` (lengths, frequency); None without a
    built-in search (off, a members file, per-group models, or every member reading --seq-length)."""
    from tasks.components.frequency import seasons_for
    from tasks.config import resolve

    resolved = resolve(cfg, device="cpu")  # what "auto" means for a file (the device plays no part here)
    w = resolved.window
    if resolved.search.mode != "on" or cfg.data.group_column or w.seq_length != WindowConfig().seq_length:
        return None
    sid, n = min(info["lengths"].items(), key=lambda kv: kv[1])
    seasons = seasons_for(info.get("frequency"), n)
    return SearchWindows(sid, n, seasons[0] if seasons else None, w, seasons[1] if len(seasons) > 1 else None)


def check_search_windows(cfg: PipelineConfig, info: dict, search: SearchWindows | None) -> None:
    """The built-in search (`search`: search_windows) ranks its members on the validation origins
    of its longest window: refuse a horizon that leaves the shortest series none there, as the
    run would, naming what fits."""
    h = cfg.window.horizon
    if search is None or search.ranks(h):
        return
    who = "the series" if len(info["lengths"]) == 1 else f"series {search.series_id!r}"
    fits = [k for k in range(1, h) if search.ranks(k)]
    ways = ([f"--horizon {max(fits)} fits"] if fits else []) + ["or --search off"]
    raise InputError("window.horizon", h, f"{who} in {cfg.data.data_path} ({search.points} points) leaves the search "
                                          f"no validation origins to rank its members by with its longest window "
                                          f"({search.longest(h)} points): {'; '.join(ways)}")


def check_validation_origins(cfg: PipelineConfig, info: dict, search: SearchWindows | None) -> None:
    """Refuse windows that leave the file's series no validation origin (unless --val-fraction 0),
    as the window stage would (tasks.windowing.no_validation_error), naming the --seq-length that
    fits. The built-in search's own windows (`search`) are check_search_windows's."""
    from tasks.config import resolve
    from tasks.windowing import no_validation_error, validation_origins

    w = resolve(cfg, device="cpu").window  # the calibration origins "auto" means for a file
    if not w.val_fraction or search is not None:
        return
    lengths = list(info["lengths"].values())
    calibration = 0 if w.calibration == "auto" else w.calibration
    try:
        found = validation_origins(lengths, w, calibration, w.seq_length)
    except ValueError:
        return  # too short altogether: check_series_length's to say
    if not found:
        raise no_validation_error(lengths, w, calibration, where=f" in {cfg.data.data_path}")


def check_writable(path: str | Path, field: str) -> None:
    """Require `path` to be a writable directory, or creatable as one, without creating anything.

    Probes with a temporary directory in the nearest existing ancestor, removed at once.
    """
    p = Path(path).expanduser().absolute()
    existing = next(a for a in (p, *p.parents) if a.exists())
    if not existing.is_dir():
        where = "" if existing == p else f": {existing} is not a directory"
        raise InputError(field, str(path), f"not a directory{where}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rnnflow-write-test-", dir=existing))
    except OSError as exc:
        why = exc.strerror or str(exc)
        msg = (f"not a writable directory ({why})" if existing == p
               else f"cannot be created: {existing} is not writable ({why})")
        raise InputError(field, str(path), msg) from None
