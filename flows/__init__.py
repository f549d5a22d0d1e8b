"""rnnflow's flows, command line and end of run. Importing the package first sets the process's
environment defaults (flows/environment.py: quiet, offline Prefect), before Prefect is imported."""

from flows.environment import apply_defaults

apply_defaults()
