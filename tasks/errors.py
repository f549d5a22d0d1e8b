"""The exceptions a run reports in one line: bad input, and numbers that cannot be used."""

from __future__ import annotations

from typing import Any


class InputError(ValueError):
    """Bad input (a file, a setting, the environment): `field` and `value` say which and what.

    The command line turns it into one line on stderr and a non-zero exit status; Prefect's
    retry condition never retries it.
    """

    def __init__(self, field: str, value: Any, message: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        super().__init__(f"{field}={value!r}: {message}")


class NumericalError(RuntimeError):
    """A computation produced numbers that cannot be used (a diverged loss, non-finite forecasts).

    Raised before the stage's entry is published, so nothing built from them is ever reused;
    the command line reports it in one line.
    """
