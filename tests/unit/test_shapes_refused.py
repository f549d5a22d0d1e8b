"""Every file people bring that cannot be read right is refused in one line (issue 22), as a
property over generated files of each refused shape (tests/helpers/shapes.py), through the command
line in this process: exit 2, one `error:` line saying what the kind must say, nothing written.
The refusals cost no training (a few milliseconds each); the shapes that are forecast run the
default search: tests/flow/test_shapes.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings

from tests.helpers.shapes import REFUSED, TINY, make, run_cli, shapes, snapshot


@settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(case=shapes(REFUSED))
def test_a_file_that_cannot_be_read_right_is_refused_in_one_line_with_nothing_written(capsys, case):
    kind, freq, n, level, seed, horizon = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shape = make(kind, root / "in", np.random.default_rng(seed), freq, n, level)
        before = snapshot(root)
        code, out, err = run_cli(capsys, shape, root, horizon, TINY)
        lines = err.strip().splitlines()
        assert code == 2, (kind, out[-2000:], err[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: ") and shape.refusal in lines[0], (kind, lines)
        assert "Traceback" not in out + err
        assert snapshot(root) == before and not (root / "out").exists()  # nothing written
