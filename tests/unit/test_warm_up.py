"""warm_up: the first-use AST building of torch's optimiser and statsforecast's models happens in
the thread that calls it, so tasks side by side in threads build none (CPython gh-106905). On the
CPU the project's optimiser (FusedAdam) has no such first-use code and imports no torch._dynamo."""

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import ast, sys
    import numpy as np
    import torch
    from tasks.components.steps import make_optimizer
    from tasks.runtime.runners import warm_up

    mode, device = sys.argv[1], sys.argv[2]
    if mode == "warm":
        torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
        warm_up(device)
        assert torch.equal(torch_state, torch.random.get_rng_state()), "warm_up drew from torch's generator"
        assert np.array_equal(np_state[1], np.random.get_state()[1]), "warm_up drew from numpy's generator"
    parses = []
    original = ast.parse
    ast.parse = lambda *a, **k: parses.append(1) or original(*a, **k)
    from statsforecast.models import AutoETS, AutoTheta
    imported = len(parses)
    g = torch.Generator().manual_seed(0)
    gru = torch.nn.GRU(3, 4, batch_first=True)
    # the optimiser training on `device` uses (off the CPU: torch.optim.Adam, here on CPU tensors)
    optimiser = make_optimizer(gru, 1e-3, torch.device("cpu")) if device == "cpu" else torch.optim.Adam(gru.parameters())
    out, _ = gru(torch.randn(2, 5, 3, generator=g))
    out.sum().backward()
    optimiser.step()
    trained = len(parses) - imported
    y = np.sin(np.arange(120) / 3.0) + 0.01 * np.arange(120)
    AutoETS(season_length=12).fit(y).predict(3)
    AutoTheta(season_length=12).fit(y).predict(3)
    print(trained, len(parses), "torch._dynamo" in sys.modules)
""")


def parses_after(mode: str, device: str) -> tuple[int, int, bool]:
    """(AST parses by a training step, by everything from the probe's imports on, torch._dynamo imported)."""
    done = subprocess.run([sys.executable, "-c", PROBE, mode, device], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    trained, total, dynamo = done.stdout.split()[-3:]
    return int(trained), int(total), dynamo == "True"


def test_after_warm_up_training_and_statistical_fits_build_no_ast_and_no_generator_moved():
    assert parses_after("cold", "cuda")[0] > 0  # without it, torch.optim.Adam's first step builds ASTs
    assert parses_after("cold", "cpu")[1] > 0  # and statsforecast's first fits do
    assert parses_after("warm", "cuda")[1] == 0


def test_on_the_cpu_training_builds_no_ast_and_imports_no_dynamo_even_cold():
    """FusedAdam: nothing of torch needs warming on the CPU, and torch._dynamo's import (about
    1.2 s a process) never happens, warmed or not."""
    cold_trained, _, cold_dynamo = parses_after("cold", "cpu")
    _, warm_total, warm_dynamo = parses_after("warm", "cpu")
    assert (cold_trained, cold_dynamo) == (0, False)
    assert (warm_total, warm_dynamo) == (0, False)
