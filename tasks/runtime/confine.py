"""Where the flow runs of a served deployment may write and read, fixed when `serve` starts.

Anyone who may create flow runs through the Prefect API chooses their parameters, the config
included. `serve` (flows/serve.py) therefore fixes, before it registers anything, the output root
and data dir it serves and the locations runs may read data from, and hands them to its flow runs
in the environment (RNNFLOW_CONFINE, JSON), which a flow run's parameters cannot change. With it
set, `check` refuses, in one line (InputError) and before anything is read or written:

    output.root, output.data_dir   anywhere but the served ones or a folder under them
    data.data_path                 a file outside the allowed data locations
    search.mode                    a members file outside them

so a flow run neither writes outside what is served nor reads a file it was not allowed, and the
error lines that quote a data file's content (a bad header, a bad value) only ever quote files the
deployment's owner allowed. Paths are compared resolved (symlinks followed, `..` folded).
Without the variable (a command-line run, a worker's run) nothing is confined.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import InputError

VARIABLE = "RNNFLOW_CONFINE"


@dataclass(frozen=True)
class Confinement:
    """The served output root and data dir, and the folders runs may read data files from."""

    root: str
    data_dir: str
    data: tuple[str, ...]

    def to_env(self) -> str:
        return json.dumps({"root": self.root, "data_dir": self.data_dir, "data": list(self.data)})


def fix(cfg, allowed: tuple[str, ...] = ()) -> Confinement:
    """The confinement of a deployment served with PipelineConfig `cfg`: its output root and data
    dir, and as data locations the folders of its data file and members file (if any) and every
    folder in `allowed` (all resolved; InputError naming --allow-data for one that is not a
    folder). `serve` puts it in its environment (`to_env`, RNNFLOW_CONFINE), which its flow runs
    inherit; this function changes nothing."""
    files = [f for f in (cfg.data.data_path, cfg.search.mode if cfg.search.mode not in ("auto", "on", "off") else None)
             if f]
    for a in allowed:
        if not Path(a).expanduser().is_dir():
            raise InputError("--allow-data", a, "not a folder")
    places = [str(Path(f).expanduser().resolve().parent) for f in files] + [
        str(Path(a).expanduser().resolve()) for a in allowed]
    root, data_dir = cfg.output.root, cfg.output.data_dir
    c = Confinement(str(Path(root).expanduser().resolve()), str(Path(data_dir).expanduser().resolve()),
                    tuple(dict.fromkeys(places)))
    return c


def current() -> Confinement | None:
    """The confinement this process runs under (RNNFLOW_CONFINE), or None."""
    raw = os.environ.get(VARIABLE)
    if not raw:
        return None
    spec = json.loads(raw)
    return Confinement(spec["root"], spec["data_dir"], tuple(spec.get("data") or ()))


def check(cfg) -> None:
    """Refuse (InputError naming the parameter) a PipelineConfig that writes or reads outside the
    confinement of this process; nothing when there is none."""
    c = current()
    if c is None:
        return
    served = "this deployment serves"
    for field, value, allowed in (("output.root", cfg.output.root, (c.root,)),
                                  ("output.data_dir", cfg.output.data_dir, (c.data_dir, c.root))):
        if not _under(value, allowed):
            raise InputError(field, value, f"outside what {served} ({' or '.join(allowed)}); `serve` fixed it "
                                           "when it started")
    places = " or ".join(c.data) if c.data else "no data location (serve --allow-data DIR adds one)"
    if cfg.data.data_path is not None and not _under(cfg.data.data_path, c.data):
        raise InputError("data.data_path", cfg.data.data_path, f"outside the data locations {served}: {places}")
    mode = cfg.search.mode
    if mode not in ("auto", "on", "off") and not _under(mode, c.data):
        raise InputError("search.mode", mode, f"a members file outside the data locations {served}: {places}")


def _under(path: str, places: tuple[str, ...]) -> bool:
    p = Path(path).expanduser().resolve()
    return any(p == Path(d) or Path(d) in p.parents for d in places)
