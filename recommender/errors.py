"""Errors a user can act on: each names the file, the row and the column at fault."""

from __future__ import annotations


class LeadrankError(Exception):
    """Base class of every error leadrank raises on purpose."""


class DataError(LeadrankError, ValueError):
    """Bad input data.

    Args:
        message: what is wrong, in words a user can act on.
        file: the file at fault (for example ``leads.csv``), if any.
        row: 1-based row number as a spreadsheet shows it (the header is row 1).
        column: the column at fault, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class NotFittedError(LeadrankError, RuntimeError):
    """An estimator was used before ``fit``."""


class UnknownIdError(LeadrankError, KeyError):
    """An external id (lead, rep, account) the model does not know."""

    def __init__(self, kind: str, value: str) -> None:
        self.kind = kind
        self.value = value
        super().__init__(f"unknown {kind} '{value}'")

    def __str__(self) -> str:
        return f"unknown {self.kind} '{self.value}'"


class ModelFolderError(LeadrankError):
    """A model folder is missing, incomplete, or of an unsupported format version."""
