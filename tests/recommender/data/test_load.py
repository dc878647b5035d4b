"""Every loader rule of CONTRACT section 1 on tiny files, and corruption never crashes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.columns import Role
from recommender.data import load_dataset
from recommender.errors import DataError

LEADS = (
    "lead_id,created_at,account_id,source,employees,zip,notes\n"
    "L1,2026-01-01,A1,web,10,01234,hello\n"
    "L2,2026-01-02 10:00,A2,referral,200,02345,\n"
    "L3,2026-01-03T10:00:00Z,,web,,03456,x\n"
    "L4,2026-01-04T10:00:00+02:00,A1,event,50,04567,y\n"
)
REPS = "rep_id,capacity,active,team\nR1,5,true,SMB\nR2,,false,Ent\nR3,0,,SMB\n"
OUTCOMES = (
    "lead_id,rep_id,outcome,assigned_at,closed_at,value\n"
    "L1,R1,won,2026-01-02,2026-01-10,100\n"
    "L2,R2,lost,,2026-01-11,\n"
    "L3,,open,,,\n"
)
EVENTS = "lead_id,event,at,weight\nL1,page_view,2026-01-01T12:00:00,\nL2,webinar,2026-01-03,2.5\n"
ACCOUNTS = "account_id,is_customer,industry,employees\nA1,true,Software,100\nA2,false,Retail,5\n"


def write(folder: Path, **files: str) -> Path:
    """Write a dataset folder: keyword = file stem (``leads`` -> leads.csv)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, text in files.items():
        name = "schema.toml" if stem == "schema" else f"{stem}.csv"
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def full(tmp_path: Path, **override: str) -> Path:
    files = {
        "leads": LEADS,
        "reps": REPS,
        "outcomes": OUTCOMES,
        "events": EVENTS,
        "accounts": ACCOUNTS,
    }
    files.update(override)
    return write(tmp_path / "ds", **files)


def error_of(folder: Path) -> DataError:
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    return info.value


def test_valid_dataset_is_typed(tmp_path: Path) -> None:
    ds = load_dataset(full(tmp_path))
    assert list(ds.leads["lead_id"]) == ["L1", "L2", "L3", "L4"]
    assert str(ds.leads["created_at"].dtype) == "datetime64[ns]"
    # a zone is converted to UTC: 10:00+02:00 is 08:00 UTC
    assert ds.leads["created_at"].iloc[3].hour == 8
    roles = {f.name: f.role for f in ds.features}
    assert roles["employees"] == Role.NUMERIC
    assert roles["zip"] == Role.NUMERIC  # every value parses as a number
    assert roles["source"] == Role.CATEGORICAL
    # the account column colliding with a lead column is renamed
    assert "account_employees" in roles and roles["industry"] == Role.CATEGORICAL
    assert ds.reps is not None and list(ds.reps["active"]) == [True, False, True]
    assert ds.reps["capacity"].isna().tolist() == [False, True, False]
    assert ds.outcomes is not None
    # assigned_at defaults to the lead's created_at
    assert ds.outcomes["assigned_at"].iloc[1] == ds.leads["created_at"].iloc[1]
    assert ds.events is not None and ds.events["weight"].tolist() == [1.0, 2.5]
    assert ds.converted().tolist() == [True, False, False, False]


def test_feature_frame_joins_accounts(tmp_path: Path) -> None:
    ds = load_dataset(full(tmp_path))
    frame = ds.feature_frame()
    assert frame["industry"].tolist() == ["Software", "Retail", None, "Software"]
    assert np.isnan(frame["account_employees"].iloc[2])
    assert frame["employees"].dtype == np.float64


def test_schema_overrides_roles_and_missing(tmp_path: Path) -> None:
    schema = (
        '[columns]\nzip = "categorical"\nnotes = "text"\nsource = "leaky"\n'
        'employees = "ignore"\n[missing]\nvalues = ["Select", "N/A"]\n'
    )
    leads = "lead_id,created_at,source,zip,notes,employees,city\nL1,2026-01-01,web,01,a,1,Select\n"
    ds = load_dataset(write(tmp_path / "s", leads=leads, schema=schema))
    roles = {f.name: f.role for f in ds.features}
    assert roles["zip"] == Role.CATEGORICAL and roles["notes"] == Role.TEXT
    assert "source" not in roles and "employees" not in roles
    assert ds.leaky == ("source",)
    assert ds.feature_frame()["zip"].tolist() == ["01"]
    assert ds.feature_frame()["city"].tolist() == [None]


def test_leaky_columns_never_become_features(tmp_path: Path) -> None:
    schema = '[columns]\nTags = "leaky"\n'
    leads = "lead_id,created_at,Tags,size\nL1,2026-01-01,hot,3\nL2,2026-01-02,cold,4\n"
    ds = load_dataset(write(tmp_path / "k", leads=leads, schema=schema))
    assert "Tags" not in ds.feature_names
    assert "Tags" not in ds.feature_frame().columns


def test_bom_and_trailing_commas_are_accepted(tmp_path: Path) -> None:
    folder = tmp_path / "bom"
    folder.mkdir()
    text = "\ufefflead_id,created_at,size,\nL1,2026-01-01,3,\nL2,2026-01-02,4,\n"
    (folder / "leads.csv").write_text(text, encoding="utf-8")
    ds = load_dataset(folder)
    assert ds.feature_names == ["size"]


@pytest.mark.parametrize(
    ("files", "file", "row", "column", "words"),
    [
        ({"leads": LEADS.replace("L4,", "L2,")}, "leads.csv", 5, "lead_id", "duplicate"),
        (
            {"leads": LEADS.replace("2026-01-02 10:00", "yesterday")},
            "leads.csv",
            3,
            "created_at",
            "ISO 8601",
        ),
        ({"leads": LEADS.replace("lead_id,", "id,")}, "leads.csv", 1, "lead_id", "missing"),
        (
            {"leads": LEADS.replace("L3,2026-01-03T10:00:00Z", ",2026-01-03T10:00:00Z")},
            "leads.csv",
            4,
            "lead_id",
            "empty",
        ),
        ({"reps": REPS.replace("R1,5", "R1,five")}, "reps.csv", 2, "capacity", "number"),
        ({"reps": REPS.replace("R1,5", "R1,-1")}, "reps.csv", 2, "capacity", ">= 0"),
        ({"reps": REPS.replace("R1,5", "R1,2.5")}, "reps.csv", 2, "capacity", "whole"),
        ({"reps": REPS.replace("false", "maybe")}, "reps.csv", 3, "active", "true or false"),
        ({"reps": REPS + "R1,1,true,SMB\n"}, "reps.csv", 5, "rep_id", "duplicate"),
        ({"outcomes": OUTCOMES.replace("lost", "LOSTT")}, "outcomes.csv", 3, "outcome", "won"),
        (
            {"outcomes": OUTCOMES.replace("L2,R2", "L9,R2")},
            "outcomes.csv",
            3,
            "lead_id",
            "not in leads.csv",
        ),
        (
            {"outcomes": OUTCOMES.replace("L2,R2", "L2,R9")},
            "outcomes.csv",
            3,
            "rep_id",
            "not in reps.csv",
        ),
        ({"outcomes": OUTCOMES.replace(",100", ",-5")}, "outcomes.csv", 2, "value", ">= 0"),
        (
            {"outcomes": OUTCOMES.replace("2026-01-10", "10/01/2026")},
            "outcomes.csv",
            2,
            "closed_at",
            "ISO 8601",
        ),
        ({"events": EVENTS.replace(",2.5", ",heavy")}, "events.csv", 3, "weight", "number"),
        (
            {"events": EVENTS.replace("L2,webinar", "L7,webinar")},
            "events.csv",
            3,
            "lead_id",
            "not in leads.csv",
        ),
        (
            {"accounts": ACCOUNTS.replace("A2,false", "A1,false")},
            "accounts.csv",
            3,
            "account_id",
            "duplicate",
        ),
        (
            {
                "leads": LEADS.replace(
                    "L1,2026-01-01,A1,web,10,01234,hello", "L1,2026-01-01,A1,web,10"
                )
            },
            "leads.csv",
            2,
            None,
            "fields",
        ),
        ({"leads": LEADS.replace("hello", "hello,extra")}, "leads.csv", 2, None, "fields"),
        ({"leads": "lead_id,created_at,x,x\nL1,2026-01-01,1,2\n"}, "leads.csv", 1, "x", "twice"),
    ],
)
def test_bad_input_names_file_row_and_column(
    tmp_path: Path, files: dict[str, str], file: str, row: int, column: str | None, words: str
) -> None:
    err = error_of(full(tmp_path, **files))
    assert err.file == file
    assert err.row == row
    assert err.column == column
    assert words in str(err)
    assert file in str(err) and f"row {row}" in str(err)


def test_outcome_naming_a_rep_needs_reps_csv(tmp_path: Path) -> None:
    folder = write(tmp_path / "n", leads=LEADS, outcomes=OUTCOMES)
    err = error_of(folder)
    assert (err.file, err.row, err.column) == ("outcomes.csv", 2, "rep_id")


def test_missing_and_empty_files(tmp_path: Path) -> None:
    assert error_of(write(tmp_path / "a", reps=REPS)).file == "leads.csv"
    err = error_of(write(tmp_path / "b", leads=""))
    assert err.file == "leads.csv" and "empty" in str(err)
    err = error_of(write(tmp_path / "c", leads="lead_id,created_at\n"))
    assert "no leads" in str(err)
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nowhere")


def test_wrong_encoding_names_the_row(tmp_path: Path) -> None:
    folder = tmp_path / "enc"
    folder.mkdir()
    data = b"lead_id,created_at,city\nL1,2026-01-01,Paris\nL2,2026-01-02," + "Zürich\n".encode(
        "latin-1"
    )
    (folder / "leads.csv").write_bytes(data)
    err = error_of(folder)
    assert err.file == "leads.csv" and err.row == 3 and "UTF-8" in str(err)


def test_declared_numeric_column_must_parse(tmp_path: Path) -> None:
    leads = "lead_id,created_at,size\nL1,2026-01-01,3\nL2,2026-01-02,big\n"
    folder = write(tmp_path / "d", leads=leads, schema='[columns]\nsize = "numeric"\n')
    err = error_of(folder)
    assert (err.row, err.column) == (3, "size")
    # without the declaration the column is simply categorical
    ds = load_dataset(write(tmp_path / "e", leads=leads))
    assert {f.name: f.role for f in ds.features}["size"] == Role.CATEGORICAL


def test_schema_with_unknown_role_is_an_error(tmp_path: Path) -> None:
    folder = write(tmp_path / "r", leads=LEADS, schema='[columns]\nzip = "postcode"\n')
    err = error_of(folder)
    assert err.file == "schema.toml" and err.column == "zip"


CELLS = st.sampled_from(["", "x", "-1", "2.5", "nan", "2026-13-45", "true", ",", '"', "\n", "é"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    file=st.sampled_from(["leads", "reps", "outcomes", "events", "accounts"]),
    line=st.integers(min_value=0, max_value=4),
    field=st.integers(min_value=0, max_value=6),
    cell=CELLS,
    drop=st.booleans(),
)
def test_random_corruption_never_crashes(
    tmp_path: Path, file: str, line: int, field: int, cell: str, drop: bool
) -> None:
    texts = {
        "leads": LEADS,
        "reps": REPS,
        "outcomes": OUTCOMES,
        "events": EVENTS,
        "accounts": ACCOUNTS,
    }
    lines = texts[file].splitlines()
    row = lines[min(line, len(lines) - 1)].split(",")
    if drop and len(row) > 1:
        row.pop(min(field, len(row) - 1))
    else:
        row[min(field, len(row) - 1)] = cell
    lines[min(line, len(lines) - 1)] = ",".join(row)
    texts[file] = "\n".join(lines) + "\n"
    folder = tmp_path / f"h{abs(hash((file, line, field, cell, drop)))}"
    try:
        load_dataset(full(folder, **texts))
    except DataError as exc:
        assert exc.file is not None


def test_parsing_accepts_pandas_nullable_columns() -> None:
    """pd.NA (string, Int64 and boolean dtypes) reads as missing, never a crash."""
    from recommender.data.parse import missing_mask, parse_categories

    values = pd.Series(["a", pd.NA, "", "N/A", "b"], dtype="string")
    assert missing_mask(values, ["N/A"]).tolist() == [False, True, True, True, False]
    assert parse_categories(values, ["N/A"]).tolist() == ["a", None, None, None, "b"]
    numbers = pd.Series([1, pd.NA], dtype="Int64")
    assert missing_mask(numbers).tolist() == [False, True]


def test_an_accounts_table_without_rows_leaves_account_features_missing() -> None:
    from recommender.data.dataset import Dataset, FeatureSpec

    leads = pd.DataFrame({"lead_id": ["L1", "L2"], "account_id": ["A1", None], "x": [1.0, 2.0]})
    accounts = pd.DataFrame(
        {"account_id": pd.Series([], dtype=object), "industry": pd.Series([], dtype=object)}
    )
    features = (
        FeatureSpec("x", Role.NUMERIC),
        FeatureSpec("industry", Role.CATEGORICAL, "account"),
    )
    frame = Dataset(leads=leads, accounts=accounts, features=features).feature_frame()
    assert frame["x"].tolist() == [1.0, 2.0]
    assert frame["industry"].tolist() == [None, None]
