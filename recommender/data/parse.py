"""Typed parsing of string columns, with errors naming file, row and column."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recommender.data.csvio import row_at, row_of
from recommender.errors import DataError

#: Timestamps are held in nanoseconds, which cover the years 1678-2261.
MIN_YEAR, MAX_YEAR = 1678, 2261
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
#: Up to this many cells, ids and plain ISO dates are checked in Python (no pandas index
#: or ``to_datetime`` call, whose fixed cost dominates a request of a few leads).
SMALL = 64
#: ISO 8601 dates and naive datetimes (``T`` or a space, optional seconds and fraction)
#: that numpy's ``datetime64`` parses exactly as ``pandas.to_datetime(format="ISO8601")``.
_PLAIN_ISO = re.compile(
    r"(\d{4})-\d{2}-\d{2}(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?)?"
)
_NAT = np.datetime64("NaT", "ns")


def _file(frame: pd.DataFrame) -> str | None:
    name = frame.attrs.get("file")
    return str(name) if name is not None else None


def _origin(frame: pd.DataFrame) -> dict[str, Any]:
    """``file`` and ``rows`` of ``frame``'s cells, as the ``*_of`` parsers take them."""
    return {"file": _file(frame), "rows": frame.attrs.get("rows")}


def _require(empty: np.ndarray, column: str, file: str | None, rows: Sequence[int] | None) -> None:
    """Raise DataError "is empty" at the first empty cell, if any."""
    if empty.any():
        pos = int(np.flatnonzero(empty)[0])
        raise DataError("is empty", file=file, row=row_at(rows, pos), column=column)


def cells(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Return column ``column`` of ``frame`` as an object array (read once per parse).

    Parsing works on this array rather than on Series: each pandas operation on a frame
    that carries ``attrs`` (the file and row numbers) copies them again.
    """
    return np.asarray(frame[column].to_numpy(dtype=object))


def missing_mask(values: pd.Series | np.ndarray, missing: Iterable[str] = ()) -> np.ndarray:
    """Return True where a string cell is missing: empty, or one of the ``missing`` tokens."""
    arr = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values
    if len(arr) <= SMALL and all(type(v) is str for v in arr):
        mask = np.zeros(len(arr), dtype=bool)  # a few strings: none is NA, no scan needed
    else:
        mask = np.asarray(pd.isna(arr), dtype=bool)
    present = ~mask
    if present.any():  # compare only real values: pd.NA == "" has no truth value
        rest = arr[present]
        hit = np.zeros(rest.shape, dtype=bool)
        for token in {"", *missing}:
            hit |= np.asarray(rest == token, dtype=bool)
        mask[present] = hit
    return mask


def _blank(values: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """A copy of ``values`` with None where ``empty``."""
    out = values.copy()
    out[empty] = None
    return out


def require_columns(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    """Raise DataError naming the first required column absent from ``frame``."""
    for name in columns:
        if name not in frame.columns:
            raise DataError("required column is missing", file=_file(frame), row=1, column=name)


def parse_ids(
    frame: pd.DataFrame, column: str, *, unique: bool, required: bool = True
) -> pd.Series:
    """Return the id column as strings (missing as None).

    Raises:
        DataError: an empty id where ``required``, or a repeated id where ``unique``.
    """
    values = ids_of(
        cells(frame, column), column, unique=unique, required=required, **_origin(frame)
    )
    return pd.Series(values, index=frame.index, dtype=object)


def ids_of(
    values: np.ndarray,
    column: str,
    *,
    unique: bool,
    required: bool = True,
    file: str | None = None,
    rows: Sequence[int] | None = None,
) -> np.ndarray:
    """:func:`parse_ids` on the object array of one column's cells; errors name ``file``
    and the row from ``rows`` (see :func:`row_at`).

    Raises:
        DataError: an empty id where ``required``, or a repeated id where ``unique``.
    """
    empty = missing_mask(values)
    if required:
        _require(empty, column, file, rows)
    if unique:
        dup = _duplicated(values) & ~empty
        if dup.any():
            pos = int(np.flatnonzero(dup)[0])
            raise DataError(
                f"duplicate id '{values[pos]}'",
                file=file,
                row=row_at(rows, pos),
                column=column,
            )
    return _blank(values, empty)


def _duplicated(values: np.ndarray) -> np.ndarray:
    """True at every repeat of an earlier value (``pandas.Index.duplicated``)."""
    if len(values) <= SMALL and all(type(v) is str for v in values):
        seen: set[str] = set()
        out = np.zeros(len(values), dtype=bool)
        for i, v in enumerate(values):
            out[i] = v in seen
            seen.add(v)
        return out
    return np.asarray(pd.Index(values).duplicated(), dtype=bool)


def parse_times(
    frame: pd.DataFrame, column: str, *, required: bool, missing: Iterable[str] = ()
) -> pd.Series:
    """Parse ISO 8601 dates or datetimes (``T`` or a space) into tz-naive UTC timestamps.

    Raises:
        DataError: an empty value where ``required``, or a value that does not parse.
    """
    values = times_of(
        cells(frame, column), column, required=required, missing=missing, **_origin(frame)
    )
    return pd.Series(values, index=frame.index)


def times_of(
    values: np.ndarray,
    column: str,
    *,
    required: bool,
    missing: Iterable[str] = (),
    file: str | None = None,
    rows: Sequence[int] | None = None,
) -> np.ndarray:
    """:func:`parse_times` on the object array of one column's cells: ``datetime64[ns]``.

    Raises:
        DataError: an empty value where ``required``, or a value that does not parse.
    """
    empty = missing_mask(values, missing)
    if required:
        _require(empty, column, file, rows)
    plain = _plain_times(values, empty)
    if plain is not None:
        return plain
    parsed = pd.DatetimeIndex(
        pd.to_datetime(_blank(values, empty), format="ISO8601", utc=True, errors="coerce")
    )
    years = np.asarray(parsed.year, dtype="float64")
    in_range = (years >= MIN_YEAR) & (years <= MAX_YEAR)
    bad = (np.asarray(parsed.isna()) | ~in_range) & ~empty
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"'{values[pos]}' is not an ISO 8601 date or datetime "
            f"between {MIN_YEAR} and {MAX_YEAR}",
            file=file,
            row=row_at(rows, pos),
            column=column,
        )
    naive = parsed.tz_convert(None).to_numpy().astype("datetime64[ns]")
    naive[empty] = np.datetime64("NaT")
    return naive


def _plain_times(values: np.ndarray, empty: np.ndarray) -> np.ndarray | None:
    """The timestamps of a few plain ISO cells (numpy parsing), or None to use pandas.

    Only cells matching ``_PLAIN_ISO`` with a year inside [MIN_YEAR, MAX_YEAR] are read
    here (a zone offset, another layout, or an impossible date such as Feb 30 leaves the
    whole column to :func:`pandas.to_datetime` and its error message).
    """
    if len(values) > SMALL:
        return None
    out = np.empty(len(values), dtype="datetime64[ns]")
    for i, v in enumerate(values):
        if empty[i]:
            out[i] = _NAT
            continue
        match = _PLAIN_ISO.fullmatch(v) if type(v) is str else None
        if match is None or not MIN_YEAR <= int(match.group(1)) <= MAX_YEAR:
            return None
        try:
            out[i] = np.datetime64(v.replace(" ", "T"), "ns")
        except ValueError:
            return None
    return out


def parse_numbers(
    frame: pd.DataFrame,
    column: str,
    *,
    missing: Iterable[str] = (),
    minimum: float | None = None,
    integer: bool = False,
) -> pd.Series:
    """Parse a numeric column into float64 (NaN where missing).

    Raises:
        DataError: a value that is not a number, below ``minimum``, or not whole where
            ``integer``.
    """
    arr = numbers_of(
        cells(frame, column),
        column,
        missing=missing,
        minimum=minimum,
        integer=integer,
        **_origin(frame),
    )
    return pd.Series(arr, index=frame.index, dtype="float64")


def numbers_of(
    values: np.ndarray,
    column: str,
    *,
    missing: Iterable[str] = (),
    minimum: float | None = None,
    integer: bool = False,
    file: str | None = None,
    rows: Sequence[int] | None = None,
) -> np.ndarray:
    """:func:`parse_numbers` on the object array of one column's cells: float64.

    Raises:
        DataError: a value that is not a number, below ``minimum``, or not whole where
            ``integer``.
    """
    empty = missing_mask(values, missing)
    arr = np.asarray(pd.to_numeric(_blank(values, empty), errors="coerce"), dtype="float64")
    bad = (np.isnan(arr) & ~empty) | np.isinf(arr)
    problem = "is not a number"
    if not bad.any() and integer:
        bad = ~np.isnan(arr) & (arr != np.round(arr))
        problem = "is not a whole number"
    if not bad.any() and minimum is not None:
        bad = ~np.isnan(arr) & (arr < minimum)
        problem = f"must be >= {minimum:g}"
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"'{values[pos]}' {problem}",
            file=file,
            row=row_at(rows, pos),
            column=column,
        )
    return arr


def parse_bools(frame: pd.DataFrame, column: str, *, default: bool | None) -> pd.Series:
    """Parse true/false (also yes/no, 1/0, any case); empty cells take ``default``.

    Returns a nullable ``boolean`` Series.

    Raises:
        DataError: a value that is neither true nor false.
    """
    values = frame[column].astype(object).fillna("").astype(str).str.lower()
    out = pd.Series(pd.NA, index=frame.index, dtype="boolean")
    out[values.isin(TRUE_WORDS).to_numpy()] = True
    out[values.isin(FALSE_WORDS).to_numpy()] = False
    empty = (values == "").to_numpy()
    bad = ~values.isin(TRUE_WORDS | FALSE_WORDS).to_numpy() & ~empty
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"'{frame[column].iloc[pos]}' is not true or false",
            file=_file(frame),
            row=row_of(frame, pos),
            column=column,
        )
    if default is not None:
        out[empty] = default
    return out


def is_numeric_column(values: pd.Series, missing: Iterable[str] = ()) -> bool:
    """Return True when every non-missing value parses as a number (and at least one does)."""
    arr = values.to_numpy(dtype=object)
    empty = missing_mask(arr, missing)
    if empty.all():
        return False
    parsed = np.asarray(pd.to_numeric(_blank(arr, empty), errors="coerce"), dtype="float64")
    return bool((~np.isnan(parsed) | empty).all())


def parse_categories(values: pd.Series, missing: Iterable[str] = ()) -> pd.Series:
    """Return an object Series of strings with missing cells as None."""
    arr = values.to_numpy(dtype=object)
    return pd.Series(categories_of(arr, missing), index=values.index, dtype=object)


def categories_of(values: np.ndarray, missing: Iterable[str] = ()) -> np.ndarray:
    """:func:`parse_categories` on an object array: a copy with missing cells as None."""
    return _blank(values, missing_mask(values, missing))
