"""The one typed config: a frozen pydantic model with one section per stage.

The flow takes it as its parameter, so Prefect validates it and renders it as a form in the UI.
Each stage reads only its own section(s); its cache key hashes only those fields.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from tasks.errors import InputError

# forecast comes last so that `until="figures"` (the flow's default) keeps the tutorial's five stages.
STAGES: tuple[str, ...] = ("generate", "window", "train", "evaluate", "figures", "forecast")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SineComponent(_Section):
    """One extra sine term added to the generated series."""

    amplitude: float = Field(1.0, description="Amplitude of this component.")
    period: float = Field(2 * math.pi, gt=0, description="Period, in the units of x.")
    phase: float = Field(0.0, description="Phase shift, in radians.")


class DataConfig(_Section):
    """Where the series comes from: the generator (default, the tutorial's sine) or a file."""

    n_points: int = Field(1020, ge=3, le=200_000_000, description="Points to generate per series (tutorial: 1020).")
    n_series: int = Field(
        1, ge=1, le=10_000_000, description="Series to generate: the sine, then seeded variations of it (phase, "
        "amplitude, level)."
    )
    x_max: float = Field(10 * math.pi, gt=0, description="x runs over linspace(0, x_max, n_points).")
    amplitude: float = Field(1.0, description="Amplitude of the main sine.")
    period: float = Field(2 * math.pi, gt=0, description="Period of the main sine, in units of x.")
    noise: float = Field(0.0, ge=0, description="Std of additive Gaussian noise (seeded).")
    trend: float = Field(0.0, description="Linear trend added per unit of x.")
    components: tuple[SineComponent, ...] = Field((), description="Extra sine components.")
    seed: int = Field(0, ge=0, description="Seed of the noise generator.")
    data_path: str | None = Field(None, description="CSV or Parquet file with your own series.")
    time_column: str = Field("timestamp", description="Time column of data_path (dates or integers).")
    value_column: str = Field("value", description="Value column of data_path.")
    id_column: str | None = Field(None, description="Series id column of data_path (many series).")
    group_column: str | None = Field(
        None, description="Group column of data_path: one global model per group of series (e.g. per store)."
    )
    fill: Literal["interpolate", "ffill"] | None = Field(
        None, description="Repair missing values instead of refusing them."
    )
    series_per_bucket: int = Field(
        1000, ge=1, le=10_000_000, description="Series per hash bucket of series_id: the unit of parallel work "
        "(buckets = ceil(series / this))."
    )
    fill_missing_dates: bool = Field(
        False, description="Add the rows a series lacks on its inferred calendar (fill repairs their values)."
    )
    time_zone: str | None = Field(
        None, description="Zone of data_path's times: localises times without an offset, converts the others "
        "(an IANA name such as Europe/Berlin, UTC or +05:30; default: the data's own)."
    )
    holidays: str | None = Field(
        None, description="Holidays of a business-day series: dates (2023-01-16,2023-02-20), observed "
        "(the weekdays the data lacks) or us-federal."
    )
    dayfirst: bool | None = Field(
        None, description="Dates written like 01/02/2024: on reads them day first (1 February), off month first "
        "(January 2); none: as the dates show (a day above 12), refused when none does."
    )


class WindowConfig(_Section):
    """Sliding windows and the chronological split."""

    seq_length: int = Field(20, ge=1, le=10_000, description="Input window length (tutorial: 20).")
    horizon: int = Field(
        1, ge=1, le=10_000, description="Steps forecast from each origin (tutorial: 1); windows leave room for them."
    )
    train_fraction: float = Field(
        0.8, gt=0, lt=1, description="Share of windows (in time order) used for training."
    )
    val_fraction: float = Field(
        0.1, ge=0, lt=1, description="Share of the training windows, from its end, held out for early stopping."
    )
    calibration: Annotated[int, Field(ge=0, le=10_000)] | Literal["auto"] = Field(
        "auto", description="Origins per series held out after the validation range to calibrate the intervals "
        "(never seen by early stopping or model selection; at most a quarter of the pre-test origins; 0: calibrate "
        "on the validation range; auto: 0 for generated data, 20 for files)."
    )
    normalize: Literal["auto", "none", "standard", "window"] = Field(
        "auto",
        description="auto: none for generated data (the tutorial), window for files; "
        "standard: per-series mean/std fitted on the training range only; "
        "window: each input window scaled by its own mean/std (RevIN-style), inverted after the forecast.",
    )

    @model_validator(mode="after")
    def _check_val(self) -> "WindowConfig":
        if self.train_fraction * (1 - self.val_fraction) <= 0:
            raise ValueError("val_fraction leaves no training windows")
        return self


class ModelConfig(_Section):
    """The recurrent network."""

    cell: Literal["auto", "rnn", "gru", "lstm"] = Field(
        "auto", description="Recurrent cell type (auto: rnn as in the tutorial; gru for files)."
    )
    hidden_size: int = Field(64, ge=1, le=8192, description="Hidden units per layer.")
    num_layers: int = Field(1, ge=1, le=16, description="Stacked recurrent layers.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout between layers (needs num_layers > 1).")
    skip: Literal["auto", "none", "naive", "seasonal"] = Field(
        "auto",
        description="Learn a correction to a baseline read off the input window: naive (last value) or seasonal "
        "(seasonal naive, naive when the season is unknown or longer than the window); auto: none for generated "
        "data (the tutorial), seasonal for files.",
    )
    recurrent_steps: int = Field(
        0, ge=0, le=10_000, description="How many of the window's last points the recurrent layers read (0: all "
        "of it). The seasonal skip and the window normalisation still see the whole window, so a long season "
        "(a day of minutes) informs the forecast at the cost of this many steps."
    )
    strategy: Literal["direct", "recursive"] = Field(
        "direct",
        description="direct: the head outputs all horizon steps; recursive: a one-step model fed its own forecasts back.",
    )


Auto = Literal["auto"]  # a value chosen by the data source: see AUTO_DEFAULTS and resolve()


class TrainConfig(_Section):
    """Optimisation: the tutorial's defaults (or, for files, AUTO_DEFAULTS), early stopping, device choice."""

    epochs: Annotated[int, Field(ge=1, le=100_000)] | Auto = Field(
        "auto", description="Maximum epochs (auto: 100 as in the tutorial; 300 for files)."
    )
    batch_size: int = Field(32, ge=1, le=1_000_000, description="Mini-batch size.")
    lr: Annotated[float, Field(gt=0, le=10)] | Auto = Field(
        "auto", description="Adam learning rate (auto: 1e-3 as in the tutorial; 1e-2 for files)."
    )
    seed: int = Field(42, ge=0, description="Seed for weights and shuffling.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto picks cuda, then mps, then cpu; others are required."
    )
    patience: Annotated[int, Field(ge=0)] | Auto = Field(
        "auto", description="Stop after this many epochs without validation improvement (0: off; auto: 5, files 20)."
    )
    min_delta: Annotated[float, Field(ge=0, lt=1)] | Auto = Field(
        "auto", description="Relative improvement of the validation loss that counts as one (auto: 0.1, files 0)."
    )
    ema_decay: float = Field(
        0.95, ge=0, lt=1, description="Per-step decay of the weight average that is validated and kept (0: off)."
    )
    lr_patience: int = Field(
        0, ge=0, description="Multiply the learning rate by lr_factor after this many epochs without improvement (0: off)."
    )
    lr_factor: float = Field(0.5, gt=0, le=1, description="Learning-rate decay factor on a plateau.")
    threads: int = Field(1, ge=1, le=256, description="torch CPU threads (1 is fastest for small models).")
    cuda_graphs: bool = Field(True, description="Capture the whole training step in a CUDA graph on cuda.")
    checkpoint_every: int = Field(10, ge=1, description="Save a resumable checkpoint every N epochs.")
    steps_per_epoch: int = Field(
        0, ge=0, description="At most this many batches per epoch (0: every training window once; many series: "
        "a fixed amount of work per epoch)."
    )
    val_windows: int = Field(
        0, ge=0, description="At most this many validation windows, evenly spaced, score each epoch for early "
        "stopping (0: all of them; the search's ranking always reads all)."
    )
    deadline: float = Field(
        0.0, ge=0, description="Stop training after the epoch that passes this Unix time, keeping the best weights "
        "(0: never). Set by a run's time limit (--time-limit); it never changes an entry's key."
    )
    log_every: int = Field(10, ge=1, description="Log the losses every N epochs.")


Reference = Literal["ets", "theta", "arima"]  # tasks.components.references.REFERENCES


def distinct(names: tuple[str, ...], what: str) -> tuple[str, ...]:
    """`names` if none repeats; else ValueError ("each reference once (e.g. ets,theta)")."""
    if len(set(names)) != len(names):
        raise ValueError(f"each {what} once (e.g. ets,theta)")
    return names


class EvalConfig(_Section):
    """The rolling-origin backtest over the test range, and the prediction intervals."""

    chunk_size: int = Field(65_536, ge=1, description="Windows per inference chunk (bounds memory).")
    season_length: int | None = Field(
        None, ge=1, description="Season length in steps for the seasonal-naive baseline (None: from the frequency)."
    )
    refit_every: int = Field(
        0, ge=0, description="Retrain on all data before each block of this many test origins (0: never; costly)."
    )
    levels: tuple[float, ...] = Field(
        (0.8, 0.95), min_length=1, max_length=5, description="Coverage levels of the split-conformal intervals."
    )
    references: tuple[Reference, ...] = Field(
        ("ets", "theta"), max_length=3, description="Statistical reference forecasters scored on the backtest next "
        "to the baselines (statsforecast): ets (AutoETS), theta (AutoTheta), arima (AutoARIMA, slower); none: off."
    )
    score_origins: int = Field(
        128, ge=0, le=1_000_000, description="At most this many validation (and calibration) origins per series, "
        "evenly spaced, score a search's members and weigh its hybrid (0: all): a statistical member forecasts "
        "every origin it is scored on, so a long series would otherwise pay per origin."
    )
    gate_baseline: Literal["best", "naive", "seasonal_naive", "ets", "theta", "arima"] = Field(
        "best", description="The baseline the gate makes the model beat: best (the best of them all), or one of "
        "naive, seasonal_naive (naive without a season), or a reference among --references."
    )

    @field_validator("levels", "references", mode="before")
    @classmethod
    def _parse_list(cls, v: object) -> object:
        if isinstance(v, str):  # "0.8,0.95" or "ets,theta" (or "none") from the command line
            return () if v.strip().lower() in ("none", "") else tuple(x for x in (p.strip() for p in v.split(",")) if x)
        return v

    @field_validator("references")
    @classmethod
    def _distinct_references(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return distinct(v, "reference")

    @field_validator("gate_baseline")
    @classmethod
    def _gate_baseline_is_computed(cls, v: str, info: ValidationInfo) -> str:
        refs = info.data.get("references")
        if refs is not None and v in ("ets", "theta", "arima") and v not in refs:
            raise ValueError(f"{v} is not among the references ({','.join(refs) or 'none'}); add it to --references")
        return v

    @field_validator("levels")
    @classmethod
    def _check_levels(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < x < 1 for x in v) or len({round(x * 100) for x in v}) != len(v):
            raise ValueError("levels must be distinct numbers between 0 and 1 (e.g. 0.8,0.95)")
        return tuple(sorted(v))


class SearchConfig(_Section):
    """Model search on the validation range, and the ensemble of the best members."""

    mode: str = Field(
        "auto", description="on: search the built-in space (tasks/components/search.py); off: one model; a JSON file: "
        "its list of members ({'model.cell': 'gru', 'window.seq_length': 24, ...}); auto: off for generated data "
        "(the tutorial), on for files."
    )
    seeds: int = Field(2, ge=1, le=20, description="Seeds per searched configuration (each a member of its own).")
    top_k: int = Field(3, ge=1, le=50, description="Networks, best by validation MASE, whose forecasts are combined.")
    combine: Literal["median", "mean"] = Field("median", description="How the top networks' forecasts combine.")
    time_limit: Annotated[float, Field(ge=0)] | Auto = Field(
        "auto", description="Seconds a search may take up to the end of its backtest (0: no limit). Each member's "
        "cost is estimated before anything trains; those that do not fit are skipped, epochs capped, and no member "
        "starts or trains past the limit (auto: 3 x the whole search's estimate on this data plus 60 s, its deadline "
        "stretched by the machine's load per core: it binds only where the cost model was wrong)."
    )
    statistical: tuple[Literal["ets", "theta", "arima", "snaive"], ...] = Field(
        ("ets", "theta", "snaive"), max_length=4, description="Statistical members (statsforecast: ets AutoETS, theta "
        "AutoTheta, arima AutoARIMA, snaive seasonal naive) scored on the validation range beside the networks; the "
        "forecast is the networks' combination and each of them, weighted by 1 / MASE^2 on the validation and "
        "calibration origins (a hybrid); none: networks only."
    )

    @field_validator("statistical", mode="before")
    @classmethod
    def _parse_statistical(cls, v: object) -> object:
        return EvalConfig._parse_list(v)

    @field_validator("statistical")
    @classmethod
    def _distinct_statistical(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return distinct(v, "statistical member")

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v in ("auto", "on", "off") or v.lower().endswith(".json"):
            return v
        raise ValueError("expected auto, on, off or a .json file of members")


class FiguresConfig(_Section):
    """Figure export."""

    width: float = Field(10.0, gt=0, le=100, description="Figure width in inches.")
    height: float = Field(4.0, gt=0, le=100, description="Figure height in inches.")
    dpi: int = Field(100, ge=20, le=600, description="Resolution of the PNG files.")


class ForecastConfig(_Section):
    """The future: horizon steps past the end of every series."""

    refit_full: bool = Field(
        False, description="Retrain on all windows (train, val and test) for the best epoch count before forecasting."
    )


class RunnerConfig(_Section):
    """Where the per-bucket work runs: in threads of this process, or on a Dask cluster through Prefect."""

    kind: Literal["local", "dask"] = Field(
        "local", description="local: threads of this process; dask: a Dask cluster (prefect-dask)."
    )
    address: str | None = Field(
        None, description="Scheduler address of a running Dask cluster (tcp://host:8786); none: a LocalCluster."
    )
    workers: int = Field(2, ge=1, le=1024, description="Worker processes of the LocalCluster (or threads, local).")
    threads_per_worker: int = Field(1, ge=1, le=256, description="Threads per LocalCluster worker process.")
    in_flight: int = Field(
        2, ge=1, le=64, description="Tasks submitted per worker at a time (submission in bounded waves)."
    )


class OutputConfig(_Section):
    """Where files go: the storage root every worker reads and writes (paths or file:// URIs;
    relative paths are resolved against the working directory)."""

    root: str = Field("artifacts", description="Run outputs and the stage cache (a path or a file:// URI).")
    data_dir: str = Field("data", description="Generated or ingested series (a path or a file:// URI).")

    @field_validator("root", "data_dir")
    @classmethod
    def _local_paths(cls, v: str) -> str:
        """file:// URIs as paths; other schemes are refused: entries are published by an atomic
        rename, which object stores (s3://, gs://) do not have, so mount those instead."""
        scheme, sep, rest = v.partition("://")
        if not sep or len(scheme) < 2:  # a plain path (or a Windows drive letter)
            return v
        if scheme == "file":
            return rest if rest.startswith("/") else "/" + rest
        raise ValueError(f"{scheme}:// storage is not supported (entries are published by an atomic rename); "
                         "mount it (s3fs, gcsfuse, NFS) and give its path")


Metric = Literal["mse", "rmse", "mae", "smape", "mase"]


class PromoteSettings(_Section):
    """How a challenger is judged against the champion: the metric (lower is better) and the margin."""

    metric: Metric = Field("mase", description="Metric on the newest holdout; lower is better.")
    margin: float = Field(0.0, ge=0, lt=1, description="Required relative improvement (0.05: 5% lower).")


class PipelineConfig(_Section):
    """Everything a run needs; the flow's single parameter."""

    data: DataConfig = DataConfig()
    window: WindowConfig = WindowConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    figures: FiguresConfig = FiguresConfig()
    forecast: ForecastConfig = ForecastConfig()
    search: SearchConfig = SearchConfig()
    runner: RunnerConfig = RunnerConfig()
    output: OutputConfig = OutputConfig()


# What "auto" means, per field: (generated data, i.e. the tutorial; a user's file, i.e. a short real
# series). The file values were chosen on public monthly, quarterly and yearly series (README,
# "Defaults for real data"): the tutorial's early stopping (10% steps, patience 5) ends training on
# a 100-point series after a few epochs of 3 mini-batches each.
AUTO_DEFAULTS: dict[str, dict[str, tuple]] = {
    "window": {"normalize": ("none", "window"), "calibration": (0, 20)},
    "search": {"mode": ("off", "on")},
    "model": {"cell": ("rnn", "gru"), "skip": ("none", "seasonal")},
    "train": {"epochs": (100, 300), "lr": (1e-3, 1e-2), "patience": (5, 20), "min_delta": (0.1, 0.0)},
}


def data_source(cfg: PipelineConfig) -> str:
    """Where the series comes from: "file" (data_path is set) or "generate"."""
    return "file" if cfg.data.data_path else "generate"


def resolve(cfg: PipelineConfig, device: str) -> PipelineConfig:
    """`cfg` with every "auto" replaced by what it means for this run: no "auto" is left, but for
    search.time_limit of a run that searches (it depends on the data: flows.budget sets it from
    the cost model, and the summary's time-limit line says it); without a search it is 0 (none).

    Each AUTO_DEFAULTS field takes its value for the data source; `device` is the device that
    train.device="auto" resolved to (tasks.components.network.resolve_device), given by the caller
    so that this module needs no torch. Resolved once, at the start of a run: stage keys hash
    these values, and the run directory records both the asked and the resolved config.
    """
    file = data_source(cfg) == "file"
    update = {section: {f: both[file] for f, both in fields.items() if getattr(getattr(cfg, section), f) == "auto"}
              for section, fields in AUTO_DEFAULTS.items()}
    if cfg.train.device == "auto":
        update["train"]["device"] = device
    mode = update.get("search", {}).get("mode", cfg.search.mode)
    if mode == "off" and cfg.search.time_limit == "auto":  # no search: nothing for a time limit to bound
        update.setdefault("search", {})["time_limit"] = 0.0
    return with_overrides(cfg, {k: v for k, v in update.items() if v})


def auto_settings(asked: PipelineConfig, resolved: PipelineConfig) -> dict[str, object]:
    """Every setting that was "auto" in `asked`, by "section.field", with its value in `resolved`."""
    fields = [(section, f) for section, names in AUTO_DEFAULTS.items() for f in names] + [("train", "device")]
    return {f"{s}.{f}": getattr(getattr(resolved, s), f) for s, f in fields
            if getattr(getattr(asked, s), f) == "auto"}


def with_overrides(cfg: PipelineConfig, overrides: dict[str, dict]) -> PipelineConfig:
    """A copy of `cfg` with `{section: {field: value}}` replaced, validated again."""
    data = cfg.model_dump()
    for section, fields in overrides.items():
        data[section].update(fields)
    return PipelineConfig.model_validate(data)


def for_sweep(config: PipelineConfig) -> PipelineConfig:
    """The config a sweep's members start from: search off (a sweep trains one model per grid
    member; "auto" would otherwise turn a file's run into a search). InputError when a search is
    asked for explicitly (on, or a members file)."""
    if config.search.mode not in ("auto", "off"):
        raise InputError("search.mode", config.search.mode, "a sweep trains one model per member of its grid; a "
                                                            "search is a run of its own (leave --search out)")
    return with_overrides(config, {"search": {"mode": "off"}})


def members_of(config: PipelineConfig, raw: Any, field: str, shown: str) -> list[dict[str, Any]]:
    """The members of a sweep or a search, each {"section.field": value}, from parsed JSON (or
    command-line specs): {key: [values]} (their product) or [{key: value}, ...]. Keys are a
    field's name ("cell") or "section.field". Each member is validated on top of `config`;
    problems are an InputError naming `field` (the option) and `shown` (its value)."""
    if isinstance(raw, dict) and all(isinstance(v, list) for v in raw.values()):
        keys = [setting_key(k, field) for k in raw]
        members = [dict(zip(keys, combo)) for combo in itertools.product(*raw.values())]
    elif isinstance(raw, list) and all(isinstance(m, dict) for m in raw):
        members = [{setting_key(k, field): v for k, v in m.items()} for m in raw]
    else:
        raise InputError(field, shown, "expected {key: [values]} or a list of {key: value} members")
    if not members:
        raise InputError(field, shown, "no members")
    for m in members:
        try:
            with_overrides(config, nested(m))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise InputError(field, f"{where}={err.get('input')}", err["msg"]) from None
    return members


def setting_key(key: str, field: str = "grid") -> str:
    """A member's key as "section.field": "seq_length" -> "window.seq_length" (or given dotted);
    InputError naming `field` for a key that is no setting or is ambiguous."""
    sections = {name: type(getattr(PipelineConfig(), name)) for name in PipelineConfig.model_fields}
    if "." in key:
        section, name = key.split(".", 1)
        if section in sections and name in sections[section].model_fields:
            return key
    found = [s for s, cls in sections.items() if key in cls.model_fields and s not in ("output", "runner")]
    if len(found) != 1:
        raise InputError(field, key, "not a setting (e.g. cell, hidden_size, seq_length, lr, or model.cell)"
                         if not found else f"ambiguous: name it as one of {', '.join(f'{s}.{key}' for s in found)}")
    return f"{found[0]}.{key}"


def nested(member: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"model.cell": "gru"} -> {"model": {"cell": "gru"}}: a member's overrides for with_overrides."""
    out: dict[str, dict[str, Any]] = {}
    for dotted, value in member.items():
        section, _, name = dotted.partition(".")
        out.setdefault(section, {})[name] = value
    return out


def section_name(section: BaseModel) -> str:
    """The PipelineConfig field a section instance belongs to ("data", "window", ...)."""
    for name, info in PipelineConfig.model_fields.items():
        if info.annotation is type(section):
            return name
    raise TypeError(f"{type(section).__name__} is not a section of PipelineConfig")
