"""Typed parsing of string columns, with errors naming file, row and column."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from recommender.data.csvio import row_of
from recommender.errors import DataError

#: Timestamps are held in nanoseconds, which cover the years 1678-2261.
MIN_YEAR, MAX_YEAR = 1678, 2261
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})


def _file(frame: pd.DataFrame) -> str | None:
    name = frame.attrs.get("file")
    return str(name) if name is not None else None


def cells(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Return column ``column`` of ``frame`` as an object array (read once per parse).

    Parsing works on this array rather than on Series: each pandas operation on a frame
    that carries ``attrs`` (the file and row numbers) copies them again.
    """
    return np.asarray(frame[column].to_numpy(dtype=object))


def missing_mask(values: pd.Series | np.ndarray, missing: Iterable[str] = ()) -> np.ndarray:
    """Return True where a string cell is missing: empty, or one of the ``missing`` tokens."""
    arr = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values
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
    values = cells(frame, column)
    empty = missing_mask(values)
    if required and empty.any():
        pos = int(np.flatnonzero(empty)[0])
        raise DataError("is empty", file=_file(frame), row=row_of(frame, pos), column=column)
    if unique:
        dup = pd.Index(values).duplicated() & ~empty
        if dup.any():
            pos = int(np.flatnonzero(dup)[0])
            raise DataError(
                f"duplicate id '{values[pos]}'",
                file=_file(frame),
                row=row_of(frame, pos),
                column=column,
            )
    return pd.Series(_blank(values, empty), index=frame.index, dtype=object)


def parse_times(
    frame: pd.DataFrame, column: str, *, required: bool, missing: Iterable[str] = ()
) -> pd.Series:
    """Parse ISO 8601 dates or datetimes (``T`` or a space) into tz-naive UTC timestamps.

    Raises:
        DataError: an empty value where ``required``, or a value that does not parse.
    """
    values = cells(frame, column)
    empty = missing_mask(values, missing)
    if required and empty.any():
        pos = int(np.flatnonzero(empty)[0])
        raise DataError("is empty", file=_file(frame), row=row_of(frame, pos), column=column)
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
            file=_file(frame),
            row=row_of(frame, pos),
            column=column,
        )
    naive = parsed.tz_convert(None).to_numpy().astype("datetime64[ns]")
    naive[empty] = np.datetime64("NaT")
    return pd.Series(naive, index=frame.index)


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
    values = cells(frame, column)
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
            file=_file(frame),
            row=row_of(frame, pos),
            column=column,
        )
    return pd.Series(arr, index=frame.index, dtype="float64")


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
    return pd.Series(_blank(arr, missing_mask(arr, missing)), index=values.index, dtype=object)
