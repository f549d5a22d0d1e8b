"""Stage keys and staleness reasons.

A stage's key hashes four things, and nothing else:
  params    the resolved config sections the flow passes to the stage (minus its run-only fields)
  upstream  the content hashes of the entries it reads (files, not timestamps)
  code      the source of the stage's module and of the code it computes with, found by folder:
            the modules it imports, transitively, under tasks/components/ plus tasks/formats.py.
            Machinery (tasks/runtime/), the config (hashed by value) and error messages
            (tasks/errors.py) are not followed: they cannot change what a stage computes.
  env       library versions that change its result and, where it trains, the kind of device
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import logging
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.runtime import store

log = logging.getLogger(__name__)

PROJECT_PACKAGES = ("tasks",)
# The code a stage computes with, by folder: the numerical components and the file formats.
COMPUTING = ("tasks.components", "tasks.formats")


def computes(module: str) -> bool:
    """True for a module whose edits can change a stage's result (see the module docstring)."""
    return any(module == root or module.startswith(root + ".") for root in COMPUTING)


# --------------------------------------------------------------------------- code hashing


@lru_cache(maxsize=None)
def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=None)
def _module_file(name: str) -> Path | None:
    """The source file of project module `name`, found by path (nothing is imported)."""
    package, *rest = name.split(".")
    if package not in PROJECT_PACKAGES or not rest:
        return None
    base = _package_dir(package).joinpath(*rest)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None  # e.g. "tasks.retry.RETRY_OPTIONS" names an attribute, not a module


# An import statement anywhere (also inside functions), parenthesised continuations included.
_IMPORT_RE = re.compile(r"^[ \t]*(from[ \t]+\.*[\w.]*[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]*)|import[ \t]+[^\n]*)", re.M)


@lru_cache(maxsize=None)
def _import_statements(source: str) -> tuple[ast.stmt, ...]:
    """The import statements of `source`, parsed one by one (much cheaper than the whole module)."""
    nodes: list[ast.stmt] = []
    for match in _IMPORT_RE.finditer(source):
        try:
            nodes.extend(ast.parse(match.group(1)).body)
        except SyntaxError:  # an "import ..." line inside a string: not code
            continue
    return tuple(nodes)


def imported_project_modules(name: str, source: str) -> set[str]:
    """Project modules that module `name` (with text `source`) imports directly."""
    package = name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_statements(source):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in [*parts, base] if p)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] in PROJECT_PACKAGES and m not in PROJECT_PACKAGES and _module_file(m)}


def code_hashes(stage_module: str, sources: dict[str, str] | None = None) -> dict[str, str]:
    """sha256 of the source of `stage_module` and of every computing module it imports, transitively.

    `sources` overrides the text of named modules (to test what an edit would do).
    """
    sources = sources or {}
    seen: dict[str, str] = {}
    todo = [stage_module]
    while todo:
        name = todo.pop()
        if name in seen or (name != stage_module and not computes(name)):
            continue
        text = sources.get(name)
        if text is None:
            text = _read_source(name)
        seen[name] = hashlib.sha256(text.encode()).hexdigest()
        todo.extend(imported_project_modules(name, text) - seen.keys())
    return dict(sorted(seen.items()))


@lru_cache(maxsize=None)
def _read_source(name: str) -> str:
    path = _module_file(name)
    if path is None:
        raise ModuleNotFoundError(name)
    return path.read_text()


# --------------------------------------------------------------------------- plans


class StagePlan(BaseModel):
    """What the flow decided about one stage before running it, and why."""

    model_config = ConfigDict(frozen=True)

    stage: str
    key: str
    base: str
    run: bool
    forced: bool = False
    reason: str
    key_inputs: dict[str, Any]
    threads: int = 1  # torch CPU threads of the task that builds it (how it runs: not in the key)
    source: str = ""  # the data the run reads (stages.source_of): reasons compare runs of the same data only
    run_name: str = ""  # the run that planned it
    resumes: bool = False  # it runs on from the checkpoint a previous (interrupted) run left

    @property
    def ref(self) -> store.StageRef:
        return store.StageRef(stage=self.stage, key=self.key, base=self.base)


def stage_key(stage: str, key_inputs: dict) -> str:
    """The content address of a stage output: a short hash of its key inputs."""
    return store.sha256_json({"stage": stage, **key_inputs})[:24]


FIRST_STAGE = "window"  # the first stage a run records in its output directory (generate's: the data directory)


def plan_stage(
    base: str | Path,
    stage: str,
    *,
    params: dict,
    upstream: dict[str, str],
    code: dict[str, str],
    env: dict[str, str],
    force: str | None = None,
    words: dict[str, str] | None = None,
    threads: int = 1,
    lease: Callable[[Path], None] | None = None,
    source: str = "",
    run_name: str = "",
) -> StagePlan:
    """Decide whether `stage` must run: forced, missing, corrupt or changed inputs; else reuse.

    A reason compares the key inputs with those of the previous run of the same data `source`
    (previous_run; never with a run of another file in the same output directory), entry by
    entry (closest); a reused entry whose key that run did not use says so ("an earlier run's
    entry; against the previous run: ..."), so that a stage reused while the one after it is
    recomputed reads as it happened. A stage no run of this data has reached, after one that
    reached FIRST_STAGE (interrupted, or stopped by --until), says so rather than "first run".
    words: how a reason names a parameter that is not a config
    section ({"anchor": ...}); threads: the torch CPU threads its task computes with; lease:
    called with the entry's directory before it is looked at (tasks/runtime/leases.py: `clean`
    then leaves it alone); run_name: the run planning it (its own entries are not "previous")."""
    base = str(Path(base).resolve())
    key_inputs = {"params": params, "upstream": upstream, "code": code, "env": env}
    key = stage_key(stage, key_inputs)
    if lease is not None:
        lease(store.entry_dir(base, stage, key))
    problem = store.verify(store.entry_dir(base, stage, key))
    previous = previous_run(base, stage, source, run_name)
    if force:
        run, reason = True, f"forced ({force})"
    elif problem is None:
        run, reason = False, "inputs unchanged"
        if previous and all(stage_key(stage, p) != key for p in previous):
            reason = (f"an earlier run's entry; against the previous run: "
                      f"{explain_change(closest(previous, key_inputs), key_inputs, words)}")
    elif problem != "output missing":
        run, reason = True, f"output missing or corrupt: {problem}"
    elif previous:
        run, reason = True, explain_change(closest(previous, key_inputs), key_inputs, words)
    elif stage != FIRST_STAGE and reached_earlier(base, FIRST_STAGE, source, run_name):
        run, reason = True, "no cached output (an earlier run of this data stopped before this stage)"
    else:
        other = recent_records(base, stage)
        run, reason = True, "no cached output (first run on this data)" if other else "no cached output (first run)"
    return StagePlan(stage=stage, key=key, base=base, run=run, forced=bool(force), reason=reason,
                     key_inputs=key_inputs, threads=threads, source=source, run_name=run_name)


def explain_change(previous: dict | None, current: dict, words: dict[str, str] | None = None) -> str:
    """Say what differs between the key inputs of the last entry used and now; a parameter named
    in `words` is called by its words there (a task's own argument, such as "anchor")."""
    if previous is None:
        return "no cached output (first run)"
    if words:
        def worded(inputs: dict) -> dict:
            return {**inputs, "params": {words.get(k, k): v for k, v in inputs.get("params", {}).items()}}

        previous, current = worded(previous), worded(current)
    named = {what: [_upstream_words(i) for i in items] if what.startswith(("upstream", "new upstream")) else items
             for what, items in _changes(previous, current).items()}
    return "; ".join(f"{what}: {', '.join(items)}" for what, items in named.items() if items) or (
        "output missing (cache entry deleted)")


def _upstream_words(name: str) -> str:
    """An upstream as a reason names it: its stage ("window"), or, for a second input from the
    same stage, the stage and what it is ("window:member_splits" -> "window (member splits)")."""
    stage, _, role = name.partition(":")
    return f"{stage} ({role.replace('_', ' ')})" if role else stage


def _changes(previous: dict, current: dict) -> dict[str, list[str]]:
    """What differs, item by item, in the groups a reason names them by ("new parameters": [...]).
    Both sides are compared as JSON holds them: a tuple argument now equals the list it was stored as."""
    previous, current = (json.loads(json.dumps(x, default=str)) for x in (previous, current))
    before, now = previous.get("upstream", {}), current["upstream"]
    code_before, code_now = previous.get("code", {}), current["code"]
    return {
        "new parameters": _diff(previous.get("params", {}), current["params"]),
        "upstream changed": sorted(k for k in now if k in before and before[k] != now[k]),
        "new upstream": sorted(set(now) - set(before)),
        "upstream no longer an input": sorted(set(before) - set(now)),
        "code changed": sorted(set(code_now) ^ set(code_before)
                               | {m for m in code_now if code_before.get(m) not in (None, code_now[m])}),
        "environment changed": _diff(previous.get("env", {}), current["env"]),
    }


def closest(candidates: list[dict], current: dict) -> dict | None:
    """Of the key inputs of entries used before (most recent first), the one that differs from
    `current` in the fewest settings, the most recent among equals: what a change is explained
    against, so one member of a sweep or one bucket is compared with its own previous entry, not
    with whichever member or bucket was recorded last. None when there are none."""
    if not candidates:
        return None
    def distance(previous: dict) -> int:  # settings that differ, one by one
        return sum(map(len, _changes(previous, current).values()))

    return min(enumerate(candidates), key=lambda ic: (distance(ic[1]), ic[0]))[1]


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{k}.")
        elif a is None and isinstance(b, dict):
            out.append(f"{prefix}{k} (a new input)")
        elif b is None and isinstance(a, dict):
            out.append(f"{prefix}{k} (no longer an input)")
        elif a != b:
            out.append(f"{prefix}{k} {_shown(a)}->{_shown(b)}")
    return out


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _shown(value: Any) -> str:
    """A parameter as a reason line shows it: a sha256 (a data file's content) by its first 12 digits."""
    if isinstance(value, str) and _SHA256.fullmatch(value):
        return f"sha256:{value[:12]}"
    return repr(value)


RECENT = 32  # entries remembered per stage in latest.json (a sweep's members of the last runs), to explain changes against


def recent_records(base: str | Path, stage: str) -> list[dict]:
    """The entries this stage used last, most recent first: {"inputs": key inputs, "source": the
    data the run read (None when not recorded), "run": the run's name, "since": the first run that
    used the entry (absent in records older than it)}; empty before its first run."""
    try:
        blob = store.read_json(Path(base) / "cache" / stage / "latest.json")
    except (OSError, ValueError):
        return []
    recent = blob.get("recent") or ([blob["key_inputs"]] if "key_inputs" in blob else [])
    return [r if "inputs" in r else {"inputs": r, "source": None, "run": None} for r in recent if isinstance(r, dict)]


def recent_inputs(base: str | Path, stage: str) -> list[dict]:
    """Key inputs of the entries this stage used last, most recent first (empty before its first run)."""
    return [r["inputs"] for r in recent_records(base, stage)]


def reached_earlier(base: str | Path, stage: str, source: str, run_name: str) -> bool:
    """Did a run of data `source` other than `run_name` use an entry of `stage` (the records keep
    the run that first used each entry: "since")?"""
    return any(r["source"] == source and r.get("since", r["run"]) not in (None, run_name)
               for r in recent_records(base, stage))


def previous_run(base: str | Path, stage: str, source: str, run_name: str = "") -> list[dict]:
    """Key inputs of the entries of `stage` that the previous run of the same data `source` used
    (the most recent one recorded other than `run_name`); empty when none is remembered."""
    records = [r for r in recent_records(base, stage) if r["source"] == source and (not run_name or r["run"] != run_name)]
    if not records:
        return []
    last = records[0]["run"]
    return [r["inputs"] for r in records if r["run"] == last]


def record_latest(plans: list[StagePlan]) -> None:
    """Remember the entries just used (one stage's: a bucket's, a member's) with the run and its
    data source, so that the next change can be explained: latest.json keeps the last entry's
    key (what `clean` keeps) and the RECENT most recent distinct entries."""
    if not plans:
        return
    last = plans[-1]
    older = recent_records(last.base, last.stage)
    since = {stage_key(last.stage, r["inputs"]): r.get("since", r["run"]) for r in older}  # who used it first
    mine = [{"inputs": p.key_inputs, "source": p.source, "run": p.run_name,
             "since": since.get(p.key) or p.run_name} for p in reversed(plans)]
    recent, seen = [], set()
    for record in mine + older:
        key = stage_key(last.stage, record["inputs"])
        if key not in seen:
            seen.add(key)
            recent.append(record)
    store.write_json(Path(last.base) / "cache" / last.stage / "latest.json",
                     {"key": last.key, "key_inputs": last.key_inputs, "recent": recent[:RECENT]})
