"""Machinery: where entries live (store), their keys (caching), how stages are declared, called and
recorded (stages, ledger), the model registry, what the Prefect UI shows (publish), retries.

None of this decides what a stage computes, so none of it is in a stage's code hash.
"""
