"""The model registry under `<output root>/models/`: the champion, its predecessors, every decision.

    <root>/models/registry.json         champion, previous, older (newest last), history
    <root>/models/<sha16>/model.pt      a champion's model file (a copy of the cache entry's file, so
                                        cache cleanup never loses it and no write to either reaches the other)
    <root>/models/registry.lock         one reader-writer of registry.json at a time

registry.json is replaced atomically and written last, so a crash anywhere before that leaves the
old champion in place. The functions named `with_*` are pure: registry in, new registry out.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import os
from pathlib import Path

from filelock import FileLock

from tasks.errors import InputError
from tasks.runtime import store

log = logging.getLogger(__name__)

REGISTRY_FILE = "registry.json"
MODEL_FILE = "model.pt"


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def models_dir(root: str | os.PathLike) -> Path:
    """Where the registry and the champions' model files live."""
    return Path(root) / "models"


def empty() -> dict:
    """A registry with no champion yet."""
    return {"champion": None, "previous": None, "older": [], "history": []}


def load(root: str | os.PathLike) -> dict:
    """The registry under `root` (an empty one if there is none yet), checked by shape.

    Raises InputError naming the file when it is not JSON or not a registry's shape (`problem`):
    one line before anything reads a field of it, instead of a TypeError after every stage ran.
    """
    path = models_dir(root) / REGISTRY_FILE
    if not path.is_file():
        return empty()
    try:
        raw = store.read_json(path)
    except (OSError, ValueError) as exc:
        raise InputError("registry", str(path), f"not a readable registry ({exc})") from None
    if (why := problem(raw)) is not None:
        raise InputError("registry", str(path), f"not a model registry: {why}")
    return {**empty(), **raw}


def problem(raw: object) -> str | None:
    """None if `raw` has a registry's shape, else what is wrong (one short phrase): an object with
    champion and previous (a model record or null), older (a list of records) and history (a list
    of objects); a model record is an object with a model_sha256 and a path under models/."""
    if not isinstance(raw, dict):
        return f"it holds a JSON {_kind(raw)}, not an object"
    for name in ("champion", "previous"):
        if raw.get(name) is not None and (why := _record_problem(raw[name])) is not None:
            return f"{name} {why}"
    for name in ("older", "history"):
        if not isinstance(raw.get(name, []), list):
            return f"{name} is a {_kind(raw[name])}, not a list"
    for i, record in enumerate(raw.get("older", [])):
        if (why := _record_problem(record)) is not None:
            return f"older[{i}] {why}"
    for i, entry in enumerate(raw.get("history", [])):
        if not isinstance(entry, dict):
            return f"history[{i}] is a {_kind(entry)}, not an object"
    return None


def _record_problem(record: object) -> str | None:
    if not isinstance(record, dict):
        return f"is a {_kind(record)}, not a model record"
    for field in ("model_sha256", "path"):
        if not isinstance(record.get(field), str) or not record[field]:
            return f"has no {field} text"
    rel = Path(record["path"])
    if rel.is_absolute() or ".." in rel.parts:
        return f"path {record['path']!r} is not under models/"
    return None


def _kind(value: object) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def registry_lock(root: str | os.PathLike) -> FileLock:
    """An inter-process lock held from reading the registry to writing it."""
    path = models_dir(root) / "registry.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path))


def commit(root: str | os.PathLike, registry: dict) -> Path:
    """Replace registry.json atomically (the last step of every change)."""
    return store.write_json(models_dir(root) / REGISTRY_FILE, registry)


def model_path(root: str | os.PathLike, record: dict) -> Path:
    """The model file of a champion record."""
    return models_dir(root) / record["path"]


def check_model(root: str | os.PathLike, record: dict) -> str | None:
    """None if a record's model file is there and intact, else why not."""
    path = model_path(root, record)
    if not path.is_file():
        return f"model file {path} is missing"
    if store.sha256_file(path) != record["model_sha256"]:
        return f"model file {path} does not match its sha256"
    return None


def install_model(root: str | os.PathLike, src: str | os.PathLike) -> dict:
    """Copy a model file to models/<sha16>/model.pt: {path, model_sha256}."""
    sha = store.sha256_file(src)
    record = {"path": f"{sha[:16]}/{MODEL_FILE}", "model_sha256": sha}
    if check_model(root, record) is not None:
        store.copy_file(Path(src), model_path(root, record))
        if (problem := check_model(root, record)) is not None:
            raise OSError(problem)
    return record


def with_promotion(registry: dict, champion: dict) -> dict:
    """The registry with `champion` in charge and the old champion as `previous`."""
    reg = copy.deepcopy(registry)
    if reg["previous"] is not None:
        reg["older"].append(reg["previous"])
    reg["previous"], reg["champion"] = reg["champion"], copy.deepcopy(champion)
    return reg


def with_decision(registry: dict, decision: dict) -> dict:
    """The registry with one more entry in its history."""
    reg = copy.deepcopy(registry)
    reg["history"].append(copy.deepcopy(decision))
    return reg


def with_rollback(registry: dict, at: str) -> dict:
    """The registry with the previous champion restored and the rollback in its history."""
    if registry.get("previous") is None:
        raise ValueError("there is no previous champion to roll back to")
    reg = copy.deepcopy(registry)
    retired = reg["champion"]
    reg["champion"], reg["previous"] = reg["previous"], (reg["older"].pop() if reg["older"] else None)
    entry = {"at": at, "action": "rolled_back", "reason": "rollback requested", "from": retired, "to": reg["champion"]}
    return with_decision(reg, entry)


def rollback(root: str | os.PathLike) -> dict:
    """Restore the previous champion under `root`; return the new registry."""
    where = f"its model registry (models/{REGISTRY_FILE})"
    if load(root).get("previous") is None:  # checked before the lock, which creates models/
        raise InputError("output_dir", str(root), f"{where} has no previous champion to roll back to")
    with registry_lock(root):
        try:
            reg = with_rollback(load(root), now())
        except ValueError as exc:
            raise InputError("output_dir", str(root), f"{where}: {exc}") from None
        if (problem := check_model(root, reg["champion"])) is not None:
            raise InputError("output_dir", str(root), f"{where}: cannot restore the previous champion: {problem}")
        commit(root, reg)
    log.info("rollback: champion is %s again (run %s)", reg["champion"]["model_sha256"][:16], reg["champion"]["run"])
    return reg
