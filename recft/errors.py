"""Named errors. Every message says which file, line, field or id is at fault."""

from __future__ import annotations


class RecftError(Exception):
    """Base class for errors recft raises on bad input; the CLI prints them as one line."""

    hint: str | None = None


class DataError(RecftError, ValueError):
    """Malformed or inconsistent data: the message names the file, line and field."""

    def __init__(self, message: str, *, path: object = None, line: int | None = None,
                 field: str | None = None, hint: str | None = None) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path, self.line, self.field, self.hint = path, line, field, hint


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A named dataset is not in the cache directory (the hint says how to fetch it)."""


class CheckpointError(RecftError):
    """A checkpoint directory is missing, corrupt, or from an incompatible version."""


class TrainingError(RecftError, RuntimeError):
    """Training cannot proceed (degenerate loss, nothing trainable, NaN weights)."""
