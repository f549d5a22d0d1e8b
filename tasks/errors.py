"""One exception type for bad input: it names the field and the value, and prints as one line."""

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
