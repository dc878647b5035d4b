"""The in-memory form of a dataset folder: typed, validated tables and column roles."""

from __future__ import annotations

from collections.abc import KeysView, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from recommender.columns import Columns, Role

SMALL_ROWS = 256
"""Up to this many rows, cells are checked and looked up one by one in Python (dicts,
loops) rather than through a pandas index or scan, whose fixed cost dominates a few rows."""


# A private constructor (stable since pandas 0.23, used by pandas itself; the stubs do not
# list it). tests/recommender/test_small_batch.py checks the frames it builds column by
# column, and frame_from_arrays falls back to the public constructor where it is gone.
_FROM_ARRAYS: Any = getattr(pd.DataFrame, "_from_arrays", None)


def frame_from_arrays(columns: Mapping[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    """Return a frame holding exactly these arrays as columns, dtypes kept as they are.

    Object arrays stay ``object`` (the constructor of pandas 3 would infer ``str`` and turn
    None into NaN) and nothing is copied, checked or consolidated column by column: built
    this way a frame of a few rows costs about a fifth of ``pd.DataFrame(dict)``. Every
    array must be one-dimensional and as long as ``index``.
    """
    if _FROM_ARRAYS is None:  # a pandas without the private constructor: the public way
        return pd.DataFrame(
            {k: pd.Series(v, index=index, dtype=v.dtype, copy=False) for k, v in columns.items()},
            index=index,
            copy=False,
        )
    frame: pd.DataFrame = _FROM_ARRAYS(
        list(columns.values()), columns=list(columns), index=index, verify_integrity=False
    )
    return frame


class FeatureColumns:
    """Model inputs as one numpy array per column: a feature frame without the frame.

    What :meth:`Dataset.feature_columns` returns and every fitted model reads like a
    DataFrame (``len``, ``columns``, ``[name]``), without the fixed cost of building a
    DataFrame and a Series per column, which dominates scoring a few leads. Numeric
    columns are float64, the others object arrays with None where missing.

    Args:
        arrays: column name to its values, all of length ``n_rows``.
        n_rows: number of rows.
    """

    __slots__ = ("arrays", "n_rows")

    def __init__(self, arrays: dict[str, np.ndarray], n_rows: int) -> None:
        self.arrays = arrays
        self.n_rows = n_rows

    @property
    def columns(self) -> KeysView[str]:
        """The column names, in order."""
        return self.arrays.keys()

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def with_columns(self, more: Mapping[str, np.ndarray]) -> FeatureColumns:
        """Return these columns followed by ``more`` (a column of ``more`` replaces one of
        the same name)."""
        return FeatureColumns({**self.arrays, **more}, self.n_rows)

    def to_frame(self) -> pd.DataFrame:
        """Return the columns as a DataFrame indexed ``0..n-1`` (the arrays are shared)."""
        return frame_from_arrays(self.arrays, pd.RangeIndex(self.n_rows))


@dataclass(frozen=True)
class FeatureSpec:
    """One model input column and its role.

    Attributes:
        name: column name as it appears in the feature frame.
        role: ``numeric``, ``categorical`` or ``text``.
        origin: ``lead`` or ``account`` (where the column came from).
    """

    name: str
    role: str
    origin: str = "lead"


@dataclass(frozen=True)
class Dataset:
    """A validated dataset folder (../shared/CONTRACT.md, section 1).

    Timestamps are tz-naive ``datetime64[ns]`` (UTC where the input named a zone).
    Id columns are strings. Missing values are ``NaN`` / ``NaT`` / ``None``.

    Attributes:
        leads: one row per lead: ``lead_id``, ``created_at``, optional ``account_id`` and
            ``source``, then the lead's own columns (numeric ones as float64,
            categorical and text ones as strings with missing as NaN).
        reps: one row per rep (``rep_id``, ``capacity`` as nullable Int64, ``active`` bool,
            attributes) or ``None`` when the folder has no ``reps.csv``.
        outcomes: ``lead_id``, ``rep_id`` (may be missing), ``outcome``, ``assigned_at``
            (filled with the lead's ``created_at`` where empty), ``closed_at``, ``value``;
            or ``None``.
        events: ``lead_id``, ``event``, ``at``, ``weight`` (1.0 where empty); or ``None``.
        accounts: ``account_id``, ``is_customer`` (nullable boolean), firmographic
            features; or ``None``.
        features: the model inputs of a lead, lead columns then account columns; ``leaky``
            and ``ignore`` columns are never listed here.
        leaky: names of columns declared ``leaky`` (kept in the tables, never modelled).
        rep_attributes: rep columns usable as rep features (role ``numeric`` or
            ``categorical``).
        missing_values: placeholders read as missing (``schema.toml`` ``[missing]``).
        roles: the role of every column that has one, as ``schema.toml`` or inference
            decided it.
        declared_roles: the roles ``schema.toml`` declares (only these make a bad value
            an error when new leads are scored).
    """

    leads: pd.DataFrame
    reps: pd.DataFrame | None = None
    outcomes: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    accounts: pd.DataFrame | None = None
    features: tuple[FeatureSpec, ...] = ()
    leaky: tuple[str, ...] = ()
    rep_attributes: tuple[FeatureSpec, ...] = ()
    missing_values: tuple[str, ...] = ()
    roles: dict[str, str] = field(default_factory=dict)
    declared_roles: dict[str, str] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """Names of the model input columns, in order."""
        return [f.name for f in self.features]

    @cached_property
    def _account_lookup(self) -> tuple[pd.Index, dict[str, np.ndarray]]:
        """Account ids as an index and every other account column as an array (built once).

        Each array ends with one extra missing value (NaN in a float64 column, else
        ``None``): position -1, which ``get_indexer`` gives an unknown account, takes it, so
        unknown accounts read as missing (an accounts table without rows included).

        Raises:
            ValueError: the dataset has no accounts.
        """
        if self.accounts is None:
            raise ValueError("this dataset has no accounts")
        table = self.accounts
        index = pd.Index(table[Columns.ACCOUNT].to_numpy(dtype=object))
        arrays = {str(c): _with_missing(table[c]) for c in table.columns if c != Columns.ACCOUNT}
        return index, arrays

    @cached_property
    def _account_positions(self) -> dict[object, int]:
        """Row of each account id (what ``get_indexer`` finds; -1 stands for unknown)."""
        index, _ = self._account_lookup
        return {a: i for i, a in enumerate(index)}

    def feature_frame(self, leads: pd.DataFrame | None = None) -> pd.DataFrame:
        """Return the model inputs of ``leads`` (default: this dataset's leads).

        Account columns are joined by ``account_id``; a lead whose account is unknown gets
        missing account features. The result is aligned with ``leads`` row by row and has
        exactly the columns ``feature_names`` (missing ones filled with NaN).
        """
        return self.feature_columns(leads).to_frame()

    def feature_columns(self, leads: pd.DataFrame | None = None) -> FeatureColumns:
        """:meth:`feature_frame` as one array per column (see :class:`FeatureColumns`)."""
        frame = self.leads if leads is None else leads
        n = len(frame)
        present = set(frame.columns)
        columns: dict[str, np.ndarray] = {
            name: frame[name].to_numpy() for name in self.feature_names if name in present
        }
        account_cols = [f.name for f in self.features if f.origin == "account"]
        if account_cols and self.accounts is not None and Columns.ACCOUNT in present:
            index, arrays = self._account_lookup
            ids = frame[Columns.ACCOUNT].to_numpy(dtype=object)
            if n <= SMALL_ROWS:  # a few leads: dict lookups instead of an index of their ids
                where = self._account_positions
                pos = np.fromiter((where.get(a, -1) for a in ids), np.intp, n)
            else:
                pos = index.get_indexer(pd.Index(ids))
            for name in account_cols:
                if name in arrays:
                    columns[name] = arrays[name].take(pos)  # -1: the trailing None
        out: dict[str, np.ndarray] = {}
        for spec in self.features:
            col = columns.get(spec.name)
            if spec.role == Role.NUMERIC:
                if col is None:
                    out[spec.name] = np.full(n, np.nan)
                elif col.dtype == np.float64:  # already typed: a copy, no parsing pass
                    out[spec.name] = np.array(col, dtype=np.float64)
                else:
                    out[spec.name] = to_float(col)
            else:
                obj = np.full(n, None, dtype=object) if col is None else np.array(col, dtype=object)
                if n > SMALL_ROWS or not all(v is None or type(v) is str for v in obj):
                    obj[pd.isna(obj)] = None
                out[spec.name] = obj
        return FeatureColumns({name: out[name] for name in self.feature_names}, n)

    def subset(self, keep: np.ndarray, *, events_before: np.datetime64 | None = None) -> Dataset:
        """Return the dataset restricted to the leads where ``keep`` is True.

        Outcome and event rows follow their leads; with ``events_before``, events at or
        after that time are dropped too. Reps, accounts and roles are kept whole.
        """
        leads = self.leads.loc[np.asarray(keep, dtype=bool)].reset_index(drop=True)
        ids = set(leads[Columns.LEAD])
        outcomes = events = None
        if self.outcomes is not None:
            o = self.outcomes
            outcomes = o.loc[o[Columns.LEAD].isin(ids)].reset_index(drop=True)
        if self.events is not None:
            ev = self.events
            rows = ev[Columns.LEAD].isin(ids).to_numpy().copy()
            if events_before is not None:
                rows &= ev[Columns.AT].to_numpy() < events_before
            events = ev.loc[rows].reset_index(drop=True)
        return replace(self, leads=leads, outcomes=outcomes, events=events)

    def converted(self) -> pd.Series:
        """Return a boolean Series indexed by ``lead_id``: True where any outcome row is won."""
        ids = self.leads[Columns.LEAD]
        if self.outcomes is None or self.outcomes.empty:
            return pd.Series(False, index=ids.to_numpy())
        won = set(self.outcomes.loc[self.outcomes[Columns.OUTCOME] == "won", Columns.LEAD])
        return pd.Series(ids.isin(won).to_numpy(), index=ids.to_numpy())


def _with_missing(column: pd.Series) -> np.ndarray:
    """An account column's values followed by one missing value (see ``_account_lookup``).

    A float64 column stays float64 (NaN appended): its values need no parsing pass when
    they are joined onto leads, and read the same as the objects they used to be.
    """
    if column.dtype == np.float64:
        return np.append(column.to_numpy(dtype=np.float64), np.nan)
    return np.append(column.to_numpy(dtype=object), np.array([None], dtype=object))


def to_float(values: np.ndarray) -> np.ndarray:
    """Numbers of a column that is not float64 yet (unparsable cells become NaN)."""
    if values.dtype == object and all(v is None or type(v) is str for v in values):
        # strings (a lead's own columns, untyped at parse): no Series needed
        return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)
    return np.asarray(
        pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan
        ),
        dtype=np.float64,
    )
