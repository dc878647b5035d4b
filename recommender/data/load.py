"""Load a dataset folder (../shared/CONTRACT.md, section 1) into a validated :class:`Dataset`.

Every check raises :class:`~recommender.errors.DataError` naming the file, the 1-based row
(as a spreadsheet shows it, the header being row 1) and the column.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.columns import Columns, Files, Outcome, Role
from recommender.data.csvio import read_csv_file, row_of
from recommender.data.dataset import Dataset, FeatureSpec, frame_from_arrays
from recommender.data.parse import (
    categories_of,
    cells,
    ids_of,
    is_numeric_column,
    numbers_of,
    parse_bools,
    parse_categories,
    parse_ids,
    parse_numbers,
    parse_times,
    require_columns,
    times_of,
)
from recommender.data.schema import Schema, load_schema
from recommender.errors import DataError

log = logging.getLogger(__name__)

LEAD_RESERVED = (Columns.LEAD, Columns.CREATED, Columns.ACCOUNT)
REP_RESERVED = (Columns.REP, Columns.CAPACITY, Columns.ACTIVE)
ACCOUNT_RESERVED = (Columns.ACCOUNT, Columns.IS_CUSTOMER)


def infer_role(values: pd.Series, name: str, schema: Schema) -> str:
    """Return the role of a free column: the schema's, else numeric or categorical."""
    if name in schema.roles:
        return schema.roles[name]
    return Role.NUMERIC if is_numeric_column(values, schema.missing) else Role.CATEGORICAL


def typed_columns(
    frame: pd.DataFrame, names: list[str], roles: dict[str, str], missing: tuple[str, ...]
) -> dict[str, pd.Series]:
    """Typed free columns: numeric to float64, others to strings with None, by name.

    Raises:
        DataError: a value that does not parse in a column declared numeric.
    """
    name_of_file = frame.attrs.get("file")
    file = str(name_of_file) if name_of_file is not None else None
    rows = frame.attrs.get("rows")
    out: dict[str, pd.Series] = {}
    for name in names:
        numeric = roles.get(name) == Role.NUMERIC
        values = _typed(cells(frame, name), name, numeric, missing, file, rows)
        out[name] = pd.Series(values, index=frame.index, dtype="float64" if numeric else object)
    return out


def _typed(
    values: np.ndarray,
    name: str,
    numeric: bool,
    missing: tuple[str, ...],
    file: str | None,
    rows: Sequence[int] | None,
) -> np.ndarray:
    """One free column's cells typed: float64 where ``numeric``, else strings with None.

    Raises:
        DataError: a value that does not parse in a numeric column.
    """
    if numeric:
        return numbers_of(values, name, missing=missing, file=file, rows=rows)
    return categories_of(values, missing)


def type_columns(
    frame: pd.DataFrame, names: list[str], roles: dict[str, str], missing: tuple[str, ...]
) -> pd.DataFrame:
    """Convert free columns in place (see :func:`typed_columns`) and return ``frame``.

    Raises:
        DataError: a value that does not parse in a column declared numeric.
    """
    typed = typed_columns(frame, names, roles, missing)
    if typed:  # one assignment: a column at a time costs a frame copy each in pandas
        frame[list(typed)] = pd.DataFrame(typed, index=frame.index)
    return frame


def parse_leads(
    frame: pd.DataFrame,
    roles: dict[str, str],
    missing: tuple[str, ...],
    *,
    infer: bool = True,
) -> pd.DataFrame:
    """Validate and type a leads table of strings (a ``leads.csv`` or leads to score).

    ``roles`` gives the role of known columns. With ``infer`` (a dataset being loaded),
    a column it does not name is typed by inference. Without (leads scored by a trained
    model, whose feature frame coerces each column to its learned role), only columns
    ``roles`` declares numeric are parsed as numbers; the rest stay strings with missing
    placeholders as None. Returns a new frame with ``lead_id`` and ``created_at`` typed.

    Raises:
        DataError: missing ``lead_id``/``created_at`` column, empty or duplicate id,
            unparsable date, or a bad number in a column declared numeric.
    """
    require_columns(frame, [Columns.LEAD, Columns.CREATED])
    free = [c for c in frame.columns if c not in LEAD_RESERVED]
    if infer:
        schema = Schema(roles=roles, missing=missing)
        full_roles = {c: roles.get(c) or infer_role(frame[c], c, schema) for c in free}
    else:
        full_roles = {c: roles.get(c, Role.CATEGORICAL) for c in free}
    name = frame.attrs.get("file")
    return parse_lead_cells(
        {c: cells(frame, c) for c in frame.columns},
        full_roles,
        missing,
        file=str(name) if name is not None else None,
        rows=frame.attrs.get("rows"),
        index=frame.index,
    )


def parse_lead_cells(
    columns: Mapping[str, np.ndarray],
    roles: Mapping[str, str],
    missing: tuple[str, ...],
    *,
    file: str | None = None,
    rows: Sequence[int] | None = None,
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """:func:`parse_leads` without inference, on one object array of cells per column.

    The form a few leads arrive in (no table of strings is built first). A column that
    ``roles`` declares numeric is parsed as numbers; any other stays strings with the
    missing placeholders as None. Errors name ``file`` and the row from ``rows`` (the
    cells' row numbers; default: data rows from row 2). Returns a frame with ``index``
    (default ``0..n-1``) and the columns in the order of ``columns``.

    Raises:
        DataError: missing ``lead_id``/``created_at`` column, empty or duplicate id,
            unparsable date, or a bad number in a column declared numeric.
    """
    for required in (Columns.LEAD, Columns.CREATED):
        if required not in columns:
            raise DataError("required column is missing", file=file, row=1, column=required)
    parsed = {
        Columns.LEAD: ids_of(
            columns[Columns.LEAD], Columns.LEAD, unique=True, file=file, rows=rows
        ),
        Columns.CREATED: times_of(
            columns[Columns.CREATED], Columns.CREATED, required=True, file=file, rows=rows
        ),
    }
    if Columns.ACCOUNT in columns:
        parsed[Columns.ACCOUNT] = ids_of(
            columns[Columns.ACCOUNT],
            Columns.ACCOUNT,
            unique=False,
            required=False,
            file=file,
            rows=rows,
        )
    for name, values in columns.items():
        if name in LEAD_RESERVED:
            continue
        numeric = roles.get(name, Role.CATEGORICAL) == Role.NUMERIC
        parsed[name] = _typed(values, name, numeric, missing, file, rows)
    n = len(columns[Columns.LEAD])
    return frame_from_arrays(
        {c: parsed[c] for c in columns}, pd.RangeIndex(n) if index is None else index
    )


def _features(
    frame: pd.DataFrame, reserved: tuple[str, ...], schema: Schema, origin: str
) -> tuple[list[FeatureSpec], list[str], dict[str, str]]:
    specs: list[FeatureSpec] = []
    leaky: list[str] = []
    roles: dict[str, str] = {}
    for name in frame.columns:
        if name in reserved:
            continue
        role = infer_role(frame[name], name, schema)
        roles[name] = role
        if role == Role.LEAKY:
            leaky.append(name)
        elif role != Role.IGNORE:
            specs.append(FeatureSpec(name=name, role=role, origin=origin))
    return specs, leaky, roles


def _load_leads(
    folder: Path, schema: Schema
) -> tuple[pd.DataFrame, list[FeatureSpec], list[str], dict[str, str]]:
    raw = read_csv_file(folder / Files.LEADS, Files.LEADS)
    require_columns(raw, [Columns.LEAD, Columns.CREATED])
    if raw.empty:
        raise DataError("has a header but no leads", file=Files.LEADS, row=2)
    specs, leaky, roles = _features(raw, LEAD_RESERVED, schema, "lead")
    leads = parse_leads(raw, roles, schema.missing)
    return leads, specs, leaky, roles


def load_accounts(
    folder: Path, schema: Schema, lead_columns: set[str], path: Path | None = None
) -> tuple[pd.DataFrame | None, list[FeatureSpec], list[str], dict[str, str]]:
    """Read ``accounts.csv`` of ``folder`` (or the file ``path``) if present.

    Account columns whose names collide with a lead column are renamed ``account_<name>``.
    Returns the typed table (or None), its feature specs, leaky columns and roles.
    """
    source = path or folder / Files.ACCOUNTS
    if not source.is_file():
        if path is not None:
            raise DataError("not found", file=str(path))
        return None, [], [], {}
    raw = read_csv_file(source, Files.ACCOUNTS if path is None else path.name)
    require_columns(raw, [Columns.ACCOUNT])
    rename = {
        c: f"account_{c}" for c in raw.columns if c in lead_columns and c not in ACCOUNT_RESERVED
    }
    if rename:
        attrs = dict(raw.attrs)
        raw = raw.rename(columns=rename)
        raw.attrs = attrs
    specs, leaky, roles = _features(raw, ACCOUNT_RESERVED, schema, "account")
    accounts = raw.copy()
    accounts.attrs = dict(raw.attrs)
    accounts[Columns.ACCOUNT] = parse_ids(accounts, Columns.ACCOUNT, unique=True)
    if Columns.IS_CUSTOMER in accounts.columns:
        accounts[Columns.IS_CUSTOMER] = parse_bools(accounts, Columns.IS_CUSTOMER, default=None)
    free = [c for c in accounts.columns if c not in ACCOUNT_RESERVED]
    accounts = type_columns(accounts, free, roles, schema.missing)
    accounts.attrs = {}
    return accounts, specs, leaky, roles


def load_reps(
    folder: Path, schema: Schema, path: Path | None = None
) -> tuple[pd.DataFrame | None, list[FeatureSpec], dict[str, str]]:
    """Read ``reps.csv`` of ``folder`` (or the file ``path``) if present.

    Returns the typed table (``capacity`` as nullable Int64, ``active`` bool, default
    true) or None, the rep attribute specs, and the roles.
    """
    source = path or folder / Files.REPS
    if not source.is_file():
        if path is not None:
            raise DataError("not found", file=str(path))
        return None, [], {}
    raw = read_csv_file(source, Files.REPS if path is None else path.name)
    require_columns(raw, [Columns.REP])
    reps = raw.copy()
    reps.attrs = dict(raw.attrs)
    reps[Columns.REP] = parse_ids(reps, Columns.REP, unique=True)
    if Columns.CAPACITY in reps.columns:
        cap = parse_numbers(reps, Columns.CAPACITY, minimum=0, integer=True)
        reps[Columns.CAPACITY] = cap.astype("Int64")
    else:
        reps[Columns.CAPACITY] = pd.array([pd.NA] * len(reps), dtype="Int64")
    if Columns.ACTIVE in reps.columns:
        reps[Columns.ACTIVE] = parse_bools(reps, Columns.ACTIVE, default=True).astype(bool)
    else:
        reps[Columns.ACTIVE] = True
    specs, _, roles = _features(reps, REP_RESERVED, schema, "rep")
    specs = [s for s in specs if s.role in (Role.NUMERIC, Role.CATEGORICAL)]
    free = [c for c in reps.columns if c not in REP_RESERVED]
    reps = type_columns(reps, free, roles, schema.missing)
    reps.attrs = {}
    return reps, specs, roles


def _load_outcomes(
    folder: Path, leads: pd.DataFrame, reps: pd.DataFrame | None
) -> pd.DataFrame | None:
    path = folder / Files.OUTCOMES
    if not path.is_file():
        return None
    raw = read_csv_file(path)
    require_columns(raw, [Columns.LEAD, Columns.REP, Columns.OUTCOME])
    out = pd.DataFrame(index=raw.index)
    out.attrs = dict(raw.attrs)
    out[Columns.LEAD] = parse_ids(raw, Columns.LEAD, unique=False)
    _check_known(raw, Columns.LEAD, out[Columns.LEAD], set(leads[Columns.LEAD]), Files.LEADS)
    out[Columns.REP] = parse_ids(raw, Columns.REP, unique=False, required=False)
    named = out[Columns.REP].notna()
    if named.any():
        if reps is None:
            pos = int(np.flatnonzero(named.to_numpy())[0])
            raise DataError(
                "names a rep but the dataset has no reps.csv",
                file=Files.OUTCOMES,
                row=row_of(raw, pos),
                column=Columns.REP,
            )
        _check_known(raw, Columns.REP, out[Columns.REP], set(reps[Columns.REP]), Files.REPS)
    outcome = raw[Columns.OUTCOME].astype(str).str.lower()
    bad = ~outcome.isin(Outcome.ALL).to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"'{raw[Columns.OUTCOME].iloc[pos]}' is not one of won, lost, open",
            file=Files.OUTCOMES,
            row=row_of(raw, pos),
            column=Columns.OUTCOME,
        )
    out[Columns.OUTCOME] = outcome.to_numpy()
    created = leads.set_index(Columns.LEAD)[Columns.CREATED]
    lead_created = created.reindex(out[Columns.LEAD].to_numpy()).to_numpy()
    if Columns.ASSIGNED in raw.columns:
        assigned = parse_times(raw, Columns.ASSIGNED, required=False).to_numpy()
        out[Columns.ASSIGNED] = np.where(pd.isna(assigned), lead_created, assigned)
    else:
        out[Columns.ASSIGNED] = lead_created
    if Columns.CLOSED in raw.columns:
        out[Columns.CLOSED] = parse_times(raw, Columns.CLOSED, required=False).to_numpy()
    else:
        out[Columns.CLOSED] = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    if Columns.VALUE in raw.columns:
        out[Columns.VALUE] = parse_numbers(raw, Columns.VALUE, minimum=0)
    else:
        out[Columns.VALUE] = np.nan
    if Columns.POLICY in raw.columns:
        out[Columns.POLICY] = parse_categories(raw[Columns.POLICY])
    if Columns.PROPENSITY in raw.columns:
        prop = parse_numbers(raw, Columns.PROPENSITY, minimum=0)
        over = prop.to_numpy() > 1
        if over.any():
            pos = int(np.flatnonzero(over)[0])
            raise DataError(
                f"'{raw[Columns.PROPENSITY].iloc[pos]}' must be between 0 and 1",
                file=Files.OUTCOMES,
                row=row_of(raw, pos),
                column=Columns.PROPENSITY,
            )
        out[Columns.PROPENSITY] = prop
    return out.reset_index(drop=True)


def _load_events(folder: Path, leads: pd.DataFrame) -> pd.DataFrame | None:
    path = folder / Files.EVENTS
    if not path.is_file():
        return None
    return load_events_file(path, leads, strict=True)


def load_events_file(path: Path, leads: pd.DataFrame, *, strict: bool = False) -> pd.DataFrame:
    """Read an ``events.csv`` file: ``lead_id``, ``event``, ``at``, optional ``weight``.

    With ``strict``, an event of a lead absent from ``leads`` is an error; otherwise such
    events are dropped (a scoring batch needs only its own leads' events).

    Raises:
        DataError: naming file, row and column.
    """
    raw = read_csv_file(path, Files.EVENTS if strict else path.name)
    require_columns(raw, [Columns.LEAD, Columns.EVENT, Columns.AT])
    out = pd.DataFrame(index=raw.index)
    out[Columns.LEAD] = parse_ids(raw, Columns.LEAD, unique=False)
    if strict:
        _check_known(raw, Columns.LEAD, out[Columns.LEAD], set(leads[Columns.LEAD]), Files.LEADS)
    out[Columns.EVENT] = parse_ids(raw, Columns.EVENT, unique=False)
    out[Columns.AT] = parse_times(raw, Columns.AT, required=True)
    if Columns.WEIGHT in raw.columns:
        out[Columns.WEIGHT] = parse_numbers(raw, Columns.WEIGHT).fillna(1.0)
    else:
        out[Columns.WEIGHT] = 1.0
    if not strict:
        out = out.loc[out[Columns.LEAD].isin(set(leads[Columns.LEAD]))]
    return out.reset_index(drop=True)


def _check_known(
    raw: pd.DataFrame, column: str, values: pd.Series, known: set[str], table: str
) -> None:
    present = values.notna().to_numpy()
    unknown = present & ~values.isin(known).to_numpy()
    if unknown.any():
        pos = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"'{values.iloc[pos]}' is not in {table}",
            file=str(raw.attrs.get("file")),
            row=row_of(raw, pos),
            column=column,
        )


def load_dataset(folder: Path | str, *, accounts: Path | str | None = None) -> Dataset:
    """Read and validate the dataset folder ``folder``.

    Args:
        folder: a folder holding ``leads.csv`` and the optional contract files.
        accounts: an ``accounts.csv`` to use instead of the folder's own.

    Returns:
        The typed :class:`Dataset`.

    Raises:
        DataError: the folder or a required file is missing, or any rule of the contract
            fails; the message names the file, row and column.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"dataset folder '{root}' not found")
    schema = load_schema(root)
    leads, lead_specs, leaky, roles = _load_leads(root, schema)
    acc_path = Path(accounts) if accounts is not None else None
    acc, acc_specs, acc_leaky, acc_roles = load_accounts(root, schema, set(leads.columns), acc_path)
    reps, rep_specs, rep_roles = load_reps(root, schema)
    outcomes = _load_outcomes(root, leads, reps)
    events = _load_events(root, leads)
    known = (
        set(leads.columns)
        | set(acc.columns if acc is not None else ())
        | set(reps.columns if reps is not None else ())
    )
    for name in schema.roles:
        if name not in known:
            log.warning("schema.toml names column '%s', which no file has", name)
    for table in (leads, acc, reps, outcomes, events):
        if table is not None:
            table.attrs = {}
    return Dataset(
        leads=leads.reset_index(drop=True),
        reps=reps.reset_index(drop=True) if reps is not None else None,
        outcomes=outcomes,
        events=events,
        accounts=acc.reset_index(drop=True) if acc is not None else None,
        features=tuple(lead_specs + acc_specs),
        leaky=tuple(leaky + acc_leaky),
        rep_attributes=tuple(rep_specs),
        missing_values=schema.missing,
        roles={**roles, **acc_roles, **rep_roles},
        declared_roles=dict(schema.roles),
    )
