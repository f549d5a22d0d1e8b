"""The numbers: windows, training, backtests, intervals, metrics, scaling, ingestion and calendars.

Plain numpy, pandas and torch. Nothing here imports Prefect, pydantic, the file layer
(`tasks.formats`) or the machinery (`tasks.runtime`), so tests, benchmarks and a REPL use these
modules as they are, and a stage's cache key covers exactly the code in here that it calls.
"""
