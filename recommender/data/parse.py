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


def missing_mask(values: pd.Series, missing: Iterable[str] = ()) -> np.ndarray:
    """Return True where a string cell is missing: empty, or one of the ``missing`` tokens."""
    tokens = {"", *missing}
    return values.isna().to_numpy() | values.isin(tokens).to_numpy()


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
    values = frame[column].astype(object)
    empty = missing_mask(values)
    if required and empty.any():
        pos = int(np.flatnonzero(empty)[0])
        raise DataError("is empty", file=_file(frame), row=row_of(frame, pos), column=column)
    if unique:
        dup = values.duplicated().to_numpy() & ~empty
        if dup.any():
            pos = int(np.flatnonzero(dup)[0])
            raise DataError(
                f"duplicate id '{values.iloc[pos]}'",
                file=_file(frame),
                row=row_of(frame, pos),
                column=column,
            )
    return values.where(~empty, None)


def parse_times(
    frame: pd.DataFrame, column: str, *, required: bool, missing: Iterable[str] = ()
) -> pd.Series:
    """Parse ISO 8601 dates or datetimes (``T`` or a space) into tz-naive UTC timestamps.

    Raises:
        DataError: an empty value where ``required``, or a value that does not parse.
    """
    values = frame[column].astype(object)
    empty = missing_mask(values, missing)
    if required and empty.any():
        pos = int(np.flatnonzero(empty)[0])
        raise DataError("is empty", file=_file(frame), row=row_of(frame, pos), column=column)
    cleaned = values.where(~empty, None)
    parsed = pd.to_datetime(cleaned, format="ISO8601", utc=True, errors="coerce")
    years = parsed.dt.year.to_numpy(dtype="float64", na_value=np.nan)
    in_range = (years >= MIN_YEAR) & (years <= MAX_YEAR)
    bad = (parsed.isna().to_numpy() | ~in_range) & ~empty
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"'{values.iloc[pos]}' is not an ISO 8601 date or datetime "
            f"between {MIN_YEAR} and {MAX_YEAR}",
            file=_file(frame),
            row=row_of(frame, pos),
            column=column,
        )
    parsed = parsed.where(~empty)
    return pd.Series(
        parsed.dt.tz_convert(None).astype("datetime64[ns]").to_numpy(), index=frame.index
    )


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
    values = frame[column].astype(object)
    empty = missing_mask(values, missing)
    parsed = pd.to_numeric(values.where(~empty, None), errors="coerce").astype("float64")
    arr = parsed.to_numpy()
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
            f"'{values.iloc[pos]}' {problem}",
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
    empty = missing_mask(values, missing)
    if empty.all():
        return False
    parsed = pd.to_numeric(values.where(~empty, None), errors="coerce")
    return bool((parsed.notna().to_numpy() | empty).all())


def parse_categories(values: pd.Series, missing: Iterable[str] = ()) -> pd.Series:
    """Return an object Series of strings with missing cells as None."""
    empty = missing_mask(values, missing)
    return values.astype(object).where(~empty, None)
