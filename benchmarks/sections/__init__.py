"""The sections of benchmarks/bench.py, one module each; common.py holds what they share.

    windowing.py      1. make_windows + tensor unfold vs the tutorial's loop (time, peak RSS)
    training.py       2. CPU training on the default task vs the tutorial (per epoch, whole run)
    memory.py         3. peak RSS of one epoch on a 1e7-point series, in a fresh process
    cuda.py           4. µs per training step on a GPU: plain loop, CUDA graph, the tutorial
    orchestration.py  5. what Prefect adds: a cached rerun of the pipeline vs a one-task flow
    peers.py          6. darts and neuralforecast on the default task, where installed

Only tasks.components is imported (plain numpy, pandas, torch): every section but 5 runs where
Prefect, pydantic and filelock are not installed, and 5 runs the flow in subprocesses.
"""
