"""The one exception the CUCM adapters raise on bad input."""

from __future__ import annotations


class CucmFileError(ValueError):
    """A CUCM file or file name that cannot be taken; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line
        self.reason = message
