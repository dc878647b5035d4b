"""Read a contract CSV file into a table of strings, with errors that name file and row.

Parsing types is left to :mod:`recommender.data.parse`; this module only checks the file
itself: it exists, is UTF-8 (a BOM is allowed), has a header, unique column names, and rows
as long as the header. Trailing empty fields (a comma at the end of every line, as some CRM
exports write) are dropped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from recommender.errors import DataError

#: The first data row as a spreadsheet numbers it (the header is row 1).
FIRST_ROW = 2


def decode_utf8(data: bytes, file: str) -> str:
    """Decode ``data`` as UTF-8 (with or without BOM).

    Raises:
        DataError: naming the row of the first byte that is not UTF-8.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = data[: exc.start].count(b"\n") + 1
        raise DataError(
            "is not UTF-8 text (save the export as UTF-8 CSV)", file=file, row=row
        ) from None


def read_csv_text(text: str, file: str) -> pd.DataFrame:
    """Parse CSV ``text`` into a DataFrame of strings (empty cells are ``""``).

    Args:
        text: the whole file, decoded.
        file: the name used in error messages (for example ``leads.csv``).

    Raises:
        DataError: empty file, no header, blank or duplicate column name, or a row whose
            number of fields differs from the header's.
    """
    if not text.strip():
        raise DataError("is empty: it needs a header row", file=file)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise DataError(f"is not valid CSV ({exc})", file=file, row=reader.line_num) from None
    header = [h.strip() for h in rows[0]]
    while header and header[-1] == "":
        header.pop()
    if not header:
        raise DataError("has an empty header row", file=file, row=1)
    width = len(header)
    for i, name in enumerate(header):
        if name == "":
            raise DataError(f"column {i + 1} of the header has no name", file=file, row=1)
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError("appears twice in the header", file=file, row=1, column=name)
        seen.add(name)
    body: list[list[str]] = []
    for offset, fields in enumerate(rows[1:]):
        row = offset + FIRST_ROW
        if not fields or (len(fields) == 1 and fields[0].strip() == ""):
            continue  # blank line
        if len(fields) > width:
            if any(f.strip() for f in fields[width:]):
                raise DataError(
                    f"has {len(fields)} fields but the header has {width}", file=file, row=row
                )
            fields = fields[:width]
        elif len(fields) < width:
            raise DataError(
                f"has {len(fields)} fields but the header has {width}", file=file, row=row
            )
        body.append([f.strip() for f in fields])
    frame = pd.DataFrame(body, columns=header, dtype=object)
    if frame.empty:
        frame = pd.DataFrame({name: pd.Series([], dtype=object) for name in header})
    # keep each data row's spreadsheet row number for later error messages
    frame.attrs["rows"] = _row_numbers(rows[1:])
    frame.attrs["file"] = file
    return frame


def _row_numbers(rows: list[list[str]]) -> list[int]:
    return [
        i + FIRST_ROW
        for i, fields in enumerate(rows)
        if fields and not (len(fields) == 1 and fields[0].strip() == "")
    ]


def read_csv_file(path: Path, file: str | None = None) -> pd.DataFrame:
    """Read the CSV file at ``path`` into a DataFrame of strings (see :func:`read_csv_text`).

    Raises:
        DataError: the file is missing or unreadable, or any check of
            :func:`read_csv_text` fails.
    """
    name = file or path.name
    if not path.is_file():  # a file the user named: its path; a dataset's file: its folder
        if file is None:
            raise DataError("not found", file=str(path))
        raise DataError(f"not found in {path.parent}", file=name)
    return read_csv_text(decode_utf8(path.read_bytes(), name), name)


def row_of(frame: pd.DataFrame, position: int) -> int:
    """Return the spreadsheet row number of the ``position``-th data row of ``frame``."""
    return row_at(frame.attrs.get("rows"), position)


def row_at(rows: Sequence[int] | None, position: int) -> int:
    """Return the row number of the ``position``-th cell, given the cells' row numbers.

    ``rows`` are the spreadsheet row numbers of the cells (None: data rows from row 2).
    """
    if rows is not None and position < len(rows):
        return rows[position]
    return position + FIRST_ROW
