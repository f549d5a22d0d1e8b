"""warm_up: the first-use AST building of torch's optimiser and statsforecast's models happens in
the thread that calls it, so tasks side by side in threads build none (CPython gh-106905)."""

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import ast, sys
    import numpy as np
    import torch
    from tasks.runtime.runners import warm_up

    if sys.argv[1] == "warm":
        torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
        warm_up()
        assert torch.equal(torch_state, torch.random.get_rng_state()), "warm_up drew from torch's generator"
        assert np.array_equal(np_state[1], np.random.get_state()[1]), "warm_up drew from numpy's generator"
    parses = []
    original = ast.parse
    ast.parse = lambda *a, **k: parses.append(1) or original(*a, **k)
    from statsforecast.models import AutoETS, AutoTheta
    g = torch.Generator().manual_seed(0)
    gru = torch.nn.GRU(3, 4, batch_first=True)
    optimiser = torch.optim.Adam(gru.parameters())
    out, _ = gru(torch.randn(2, 5, 3, generator=g))
    out.sum().backward()
    optimiser.step()
    y = np.sin(np.arange(120) / 3.0) + 0.01 * np.arange(120)
    AutoETS(season_length=12).fit(y).predict(3)
    AutoTheta(season_length=12).fit(y).predict(3)
    print(len(parses))
""")


def parses_after(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


def test_after_warm_up_training_and_statistical_fits_build_no_ast_and_no_generator_moved():
    assert parses_after("cold") > 0  # without it, the first training step and fits build ASTs
    assert parses_after("warm") == 0
