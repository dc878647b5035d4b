"""The in-memory form of a dataset folder: typed, validated tables and column roles."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from recommender.columns import Columns, Role


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

        Each array ends with one extra ``None``: position -1, which ``get_indexer`` gives an
        unknown account, takes it, so unknown accounts read as missing (an accounts table
        without rows included).

        Raises:
            ValueError: the dataset has no accounts.
        """
        if self.accounts is None:
            raise ValueError("this dataset has no accounts")
        table = self.accounts
        index = pd.Index(table[Columns.ACCOUNT].to_numpy(dtype=object))
        arrays = {
            str(c): np.append(table[c].to_numpy(dtype=object), np.array([None], dtype=object))
            for c in table.columns
            if c != Columns.ACCOUNT
        }
        return index, arrays

    def feature_frame(self, leads: pd.DataFrame | None = None) -> pd.DataFrame:
        """Return the model inputs of ``leads`` (default: this dataset's leads).

        Account columns are joined by ``account_id``; a lead whose account is unknown gets
        missing account features. The result is aligned with ``leads`` row by row and has
        exactly the columns ``feature_names`` (missing ones filled with NaN).
        """
        frame = self.leads if leads is None else leads
        n = len(frame)
        columns: dict[str, np.ndarray] = {
            name: frame[name].to_numpy() for name in self.feature_names if name in frame.columns
        }
        account_cols = [f.name for f in self.features if f.origin == "account"]
        if account_cols and self.accounts is not None and Columns.ACCOUNT in frame.columns:
            index, arrays = self._account_lookup
            pos = index.get_indexer(pd.Index(frame[Columns.ACCOUNT].to_numpy(dtype=object)))
            for name in account_cols:
                if name in arrays:
                    columns[name] = arrays[name].take(pos)  # -1: the trailing None
        out: dict[str, np.ndarray | pd.Series] = {}
        for spec in self.features:
            col = columns.get(spec.name)
            if spec.role == Role.NUMERIC:
                if col is None:
                    out[spec.name] = np.full(n, np.nan)
                elif col.dtype == np.float64:  # already typed: a copy, no parsing pass
                    out[spec.name] = np.array(col, dtype=np.float64)
                else:
                    out[spec.name] = pd.to_numeric(
                        pd.Series(col, dtype=object), errors="coerce"
                    ).to_numpy(dtype="float64", na_value=np.nan)
            else:
                obj = np.full(n, None, dtype=object) if col is None else np.array(col, dtype=object)
                obj[pd.isna(obj)] = None
                # an explicit object Series: pandas 3 would infer "str" and turn None into NaN
                out[spec.name] = pd.Series(obj, dtype=object, copy=False)
        return pd.DataFrame(out, index=pd.RangeIndex(n), columns=self.feature_names)

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
