"""The shape of the house: stages side by side, numbers without Prefect, honest code hashes."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.runtime import caching
from tasks.runtime.caching import code_hashes

ROOT = Path(__file__).resolve().parents[2]
STAGE_MODULES = ("generate", "windowing", "train", "evaluate", "figures", "forecast", "promote", "validate")


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement of `path` names (at any depth: functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def import_graph(root: Path, packages: tuple[str, ...] = ("flows", "tasks")) -> dict[str, set[str]]:
    """module -> the modules of `packages` under `root` it imports, at any depth (functions too),
    except in an `if __name__ == "__main__":` block (the script's own body, not the module's
    imports) or an `if TYPE_CHECKING:` block (never run)."""
    paths = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
             for package in packages for p in (root / package).rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names, todo = set(), [ast.parse(path.read_text())]
        while todo:
            node = todo.pop()
            if isinstance(node, ast.If) and ast.unparse(node.test) in ("__name__ == '__main__'", "TYPE_CHECKING"):
                todo += node.orelse
                continue
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from its package, up level - 1
                    base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], *filter(None, [base])])
                names.add(base)
                names.update(f"{base}.{a.name}" for a in node.names)
            todo += ast.iter_child_nodes(node)
        graph[module] = {n for n in names if n in paths} - {module}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_among_flows_and_tasks():
    """The command line, the flow and the stages import one another in one direction only: the
    flow module's `__main__` hands argv to flows/commands.py, which imports the flow when it runs."""
    graph = import_graph(ROOT)
    assert "flows.rnn_flow" in graph["flows.commands"] and "flows.commands" not in graph["flows.rnn_flow"]
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "flows" / "__init__.py").write_text("")
    (tmp_path / "tasks" / "__init__.py").write_text("")
    (tmp_path / "flows" / "a.py").write_text("import tasks.b\n")
    (tmp_path / "tasks" / "b.py").write_text("from . import c\n")
    (tmp_path / "tasks" / "c.py").write_text("def f():\n    from flows.a import x\n")
    (tmp_path / "flows" / "main.py").write_text("import tasks.b\nif __name__ == '__main__':\n    import flows.main\n")
    graph = import_graph(tmp_path)
    assert graph["tasks.b"] == {"tasks", "tasks.c"} and "flows.main" not in graph["flows.main"]
    assert import_cycles(graph) == [["flows.a", "tasks.b", "tasks.c"]]
    (tmp_path / "tasks" / "c.py").write_text("def f():\n    import flows\n")
    assert import_cycles(import_graph(tmp_path)) == []


def test_the_flow_module_names_every_task_kind_it_and_the_search_call_with_its_module():
    """A newcomer reaches any stage's logic from flows/rnn_flow.py in one step: every task the flows
    import (flows/rnn_flow.py, flows/search.py) is listed in rnn_flow.py's docstring with the module
    it comes from, and every task listed there is one they import."""
    doc = ast.get_docstring(ast.parse((ROOT / "flows" / "rnn_flow.py").read_text()))
    listed = dict(re.findall(r"^\s+(\w+_task)\s+(tasks/\w+\.py)\s", doc, re.M))
    called = {}
    for module in ("rnn_flow", "search"):
        for node in ast.walk(ast.parse((ROOT / "flows" / f"{module}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tasks."):
                called.update({a.name: node.module.replace(".", "/") + ".py" for a in node.names
                               if a.name.endswith("_task")})
    assert listed == called
    assert len(called) >= 13


LONG = 520  # lines: about 500, a little slack for a docstring line


def test_no_long_module_in_flows_or_components_unless_its_docstring_says_why():
    """Short modules: over ~500 lines, a module of flows/ or tasks/components/ says in its
    docstring why its one concern earns the length ("One concern, about N lines: ...")."""
    long = {p.relative_to(ROOT).as_posix(): n for folder in ("flows", "tasks/components")
            for p in (ROOT / folder).glob("*.py") if (n := len(p.read_text().splitlines())) > LONG}
    unsaid = [path for path in long if "One concern, about" not in (ast.get_docstring(ast.parse(
        (ROOT / path).read_text())) or "")]
    assert unsaid == [], {p: long[p] for p in unsaid}


def test_every_stage_module_declares_itself():
    for name in STAGE_MODULES:
        source = (ROOT / "tasks" / f"{name}.py").read_text()
        assert "STAGE = StageSpec(" in source or name == "promote", name


@pytest.mark.parametrize("stage", STAGE_MODULES)
def test_no_stage_module_imports_another_stage_module(stage):
    others = {f"tasks.{s}" for s in STAGE_MODULES} - {f"tasks.{stage}"}
    imported = imported_modules(ROOT / "tasks" / f"{stage}.py")
    assert not imported & others, f"tasks/{stage}.py imports {sorted(imported & others)}"
    assert not {m for m in imported if m.startswith("flows")}


def test_numbers_import_neither_prefect_nor_the_file_layer_nor_the_machinery():
    for path in (ROOT / "tasks" / "components").glob("*.py"):
        for module in imported_modules(path):
            assert not module.startswith(("prefect", "pydantic", "filelock", "tasks.formats", "tasks.runtime",
                                          "tasks.config", "flows")), (path.name, module)


WITHOUT_PREFECT = """
import sys
for name in ("prefect", "pydantic", "filelock"):
    sys.modules[name] = None  # `import name` raises ImportError: no stubs
import pkgutil, importlib
import tasks.components as components
for info in pkgutil.iter_modules(components.__path__):
    importlib.import_module(f"tasks.components.{info.name}")
import torch
from tasks.components.fit import train_model
from tasks.components.specs import FitSettings, NetworkSpec
from tasks.components.split import build_split
from tasks.components.synthetic import sine_values
values = sine_values(n_points=120)
split = build_split([120], ["s"], seq_length=10).with_scalers(values)
model, st = train_model(values, split, NetworkSpec(hidden_size=4), FitSettings(epochs=2, patience=0),
                        torch.device("cpu"))
assert st.epoch == 2 and len(st.history["train_loss"]) == 2
print("trained", st.history["train_loss"][-1])
"""


def test_the_numerical_folder_imports_and_trains_without_prefect_pydantic_or_filelock():
    proc = subprocess.run([sys.executable, "-c", WITHOUT_PREFECT], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("trained ")


def edit(module: str, old: str, new: str) -> dict[str, str]:
    """The `sources` override of code_hashes for `module` with one string replaced."""
    text = caching._read_source(module)
    assert old in text, f"{old!r} is not in {module}"
    return {module: text.replace(old, new, 1)}


def stage_hashes(sources: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    return {s: code_hashes(f"tasks.{s}", sources) for s in STAGE_MODULES}


def test_rewording_an_ingestion_error_changes_only_the_generate_key():
    before = stage_hashes()
    after = stage_hashes(edit("tasks.components.ingest", "no such column", "there is no column"))
    assert {s for s in STAGE_MODULES if before[s] != after[s]} == {"generate"}


def test_editing_figure_code_changes_only_the_figures_key():
    before = stage_hashes()
    after = stage_hashes(edit("tasks.figures", "Training loss (MSE)", "Loss per epoch (MSE)"))
    assert {s for s in STAGE_MODULES if before[s] != after[s]} == {"figures"}


def test_editing_the_network_changes_the_stages_that_run_it_only():
    before = stage_hashes()
    after = stage_hashes(edit("tasks.components.network", "out, _ = self.rnn(seen)", "out, _h = self.rnn(seen)"))
    assert {s for s in STAGE_MODULES if before[s] != after[s]} == {"train", "evaluate", "forecast", "promote",
                                                                   "validate"}


def module_saying(sentence: str) -> str:
    """The one module of flows/ or tasks/ whose source holds `sentence`."""
    found = [".".join(p.relative_to(ROOT).with_suffix("").parts) for folder in ("flows", "tasks")
             for p in (ROOT / folder).rglob("*.py") if sentence in p.read_text()]
    assert len(found) == 1, (sentence, found)
    return found[0]


@pytest.mark.parametrize("sentence", ["gate: FAILED on the", "the forecast is still the model's",
                                      "was not computed in this backtest", "no metric is defined for the model",
                                      "zero width (every validation forecast was exact)", "the baseline is exact"])
def test_rewording_a_report_sentence_changes_no_stage_key(sentence):
    """The gate's verdict and its reasons, the interval line and the ratio words are the report's:
    wherever such a sentence lives, rewording it recomputes nothing (it would, were it in a stage's
    code: the gate decides in numbers and says why in WHY items)."""
    module = module_saying(sentence)
    before = stage_hashes()
    after = stage_hashes(edit_any(module, sentence))
    assert {s for s in STAGE_MODULES if before[s] != after[s]} == set(), module


def edit_any(module: str, sentence: str) -> dict[str, str]:
    """The `sources` override of code_hashes rewording `sentence` in `module` (read off its file)."""
    path = ROOT / Path(*module.split(".")).with_suffix(".py")
    return {module: path.read_text().replace(sentence, sentence.upper())}


@pytest.mark.parametrize("module, old, new", [
    ("tasks.components.backtest", "test_scores = (y - pred) /", "test_scores = (pred - y) /"),
    ("tasks.components.gate", "tolerance = float(relative) * float(weight)", "tolerance = float(relative)"),
    ("tasks.components.baselines", "m * np.ceil(h / m)", "m * np.floor(h / m)"),
    ("tasks.components.aggregate", "def aggregate(results: list[dict]) -> dict:",
     "def aggregate(results: list[dict], /) -> dict:"),
])
def test_editing_the_backtests_arithmetic_changes_the_evaluate_key_and_not_the_train_key(module, old, new):
    before = stage_hashes()
    after = stage_hashes(edit(module, old, new))
    changed = {s for s in STAGE_MODULES if before[s] != after[s]}
    assert "evaluate" in changed and "train" not in changed and "windowing" not in changed, changed


def test_the_train_key_covers_the_network_its_file_and_its_training_only():
    """The train key follows the modules train runs: not the backtest, the gate, the intervals,
    the statistical references, the calendar, the search's cost model or the ensemble's file format."""
    hashes = code_hashes("tasks.train")
    assert {"tasks.components.fit", "tasks.components.network", "tasks.formats.model"} <= hashes.keys()
    assert not hashes.keys() & {"tasks.components.backtest", "tasks.components.gate", "tasks.components.intervals",
                                "tasks.components.references", "tasks.components.calendar", "tasks.components.cost",
                                "tasks.components.ensemble", "tasks.formats.ensemble"}, sorted(hashes)


def test_machinery_config_and_messages_are_in_no_key():
    for stage, hashes in stage_hashes().items():
        assert not [m for m in hashes if m.startswith(("tasks.runtime", "tasks.config", "tasks.errors"))], stage


PRIVATE = re.compile(r"_locks|_get_lock_info|__annotations__|Finished in state")


def test_no_private_prefect_names_no_rewritten_annotations_no_log_text_matching():
    hits = [f"{p.relative_to(ROOT)}:{i}" for folder in ("flows", "tasks") for p in (ROOT / folder).rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if PRIVATE.search(line)]
    assert hits == []


def test_loading_the_flow_loads_no_plotting_library():
    """A rerun that reuses the figures and forecast stages never pays for importing matplotlib."""
    code = "import sys, flows.rnn_flow\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"
