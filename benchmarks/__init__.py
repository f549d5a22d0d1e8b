"""Benchmarks of rnnflow: `python benchmarks/bench.py` (see bench.py) and `benchmarks/cache_bench.py`."""
