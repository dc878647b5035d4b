"""The public-dataset converters (examples/) against the shipped files in ../shared/datasets.

Skipped, with the reason, where that folder is absent: the data is not part of the package.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"
XEDU = DATASETS / "x-education"
MAVEN = DATASETS / "maven-crm"

if not (XEDU / "leads.csv").is_file() or not (MAVEN / "sales_pipeline.csv").is_file():
    pytest.skip(f"../shared/datasets not found: {DATASETS}", allow_module_level=True)

if str(ROOT) not in sys.path:  # examples/ is not an installed package
    sys.path.insert(0, str(ROOT))

from examples import maven_crm, xeducation  # noqa: E402
from recommender.errors import DataError  # noqa: E402

LEAKY = {"Tags", "Lead Quality", "Lead Profile", "Last Activity", "Last Notable Activity"}


def read(path: Path) -> pd.DataFrame:
    """Read a written CSV exactly as text (empty cells are "")."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def load(path: Path) -> Any:
    """Load a dataset folder with the project's loader (skip if it is not there yet)."""
    data = pytest.importorskip("recommender.data", reason="recommender.data not importable")
    if not hasattr(data, "load_dataset"):
        pytest.skip("recommender.data.load_dataset not written yet")
    return data.load_dataset(path)


@pytest.fixture(scope="module")
def xedu(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("xedu") / "data"
    return out, xeducation.convert(XEDU, out)


@pytest.fixture(scope="module")
def xedu_leaky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("xedu_leaky") / "data"
    return out, xeducation.convert(XEDU / "leads.csv", out, keep_leaky=True)


@pytest.fixture(scope="module")
def maven(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("maven") / "data"
    return out, maven_crm.convert(MAVEN, out)


# --- X Education -------------------------------------------------------------------------


def test_xeducation_files_rows_and_columns(xedu: tuple[Path, dict[str, Any]]) -> None:
    out, summary = xedu
    assert sorted(p.name for p in out.iterdir()) == ["leads.csv", "outcomes.csv", "schema.toml"]
    leads, outcomes = read(out / "leads.csv"), read(out / "outcomes.csv")
    source = read(XEDU / "leads.csv")
    assert len(leads) == len(outcomes) == len(source) == 9240 == summary["leads"]
    assert leads["lead_id"].is_unique
    assert list(leads.columns[:3]) == ["lead_id", "created_at", "source"]
    expected = [
        c
        for c in source.columns
        if c not in ("Prospect ID", "Lead Number", "Converted", "Lead Source")
        and not c.startswith("Unnamed")
    ]
    assert list(leads.columns[3:]) == expected  # original names, trailing column dropped
    assert {"TotalVisits", "Total Time Spent on Website", "Page Views Per Visit"} <= set(expected)
    assert set(leads["lead_id"]) == set(source["Lead Number"])


def test_xeducation_created_at_follows_lead_number(xedu: tuple[Path, dict[str, Any]]) -> None:
    out, summary = xedu
    leads = read(out / "leads.csv")
    created = pd.to_datetime(leads["created_at"], format="%Y-%m-%dT%H:%M:%S")
    assert created.is_monotonic_increasing and created.is_unique
    assert leads["lead_id"].astype(int).is_monotonic_increasing
    assert leads["created_at"].iloc[0] == "2024-01-01T00:00:00"
    split = pd.Timestamp(summary["split_time"])
    assert (created < split).sum() == summary["train_leads"] == 6930
    assert (created >= split).sum() == summary["test_leads"] == 2310


def test_xeducation_outcomes(xedu: tuple[Path, dict[str, Any]]) -> None:
    out, summary = xedu
    outcomes = read(out / "outcomes.csv")
    source = read(XEDU / "leads.csv").set_index("Lead Number")
    assert list(outcomes.columns) == ["lead_id", "rep_id", "outcome"]
    assert (outcomes["rep_id"] == "").all()
    expected = source.loc[outcomes["lead_id"], "Converted"].map({"1": "won", "0": "lost"})
    assert (outcomes["outcome"].to_numpy() == expected.to_numpy()).all()
    assert summary["converted"] == 3561
    assert summary["conversion_rate"] == pytest.approx(0.3854, abs=1e-4)


def test_xeducation_schema_declares_leaky_and_select(
    xedu: tuple[Path, dict[str, Any]], xedu_leaky: tuple[Path, dict[str, Any]]
) -> None:
    schema = tomllib.loads((xedu[0] / "schema.toml").read_text(encoding="utf-8"))
    assert schema["missing"]["values"] == ["Select"]
    roles = schema["columns"]
    assert {n for n, r in roles.items() if r == "leaky"} == LEAKY
    assert roles["Asymmetrique Activity Index"] == roles["Asymmetrique Profile Index"] == "ignore"
    assert roles["Magazine"] == "ignore"  # a single value
    assert "Asymmetrique Activity Score" not in roles
    kept = tomllib.loads((xedu_leaky[0] / "schema.toml").read_text(encoding="utf-8"))
    assert "leaky" not in kept["columns"].values()
    assert kept["missing"]["values"] == ["Select"]
    same = (xedu[0] / "leads.csv").read_bytes() == (xedu_leaky[0] / "leads.csv").read_bytes()
    assert same


def test_xeducation_loads_with_select_missing_and_leaky_out(
    xedu: tuple[Path, dict[str, Any]], xedu_leaky: tuple[Path, dict[str, Any]]
) -> None:
    assert (read(xedu[0] / "leads.csv") == "Select").any().any()  # left for the loader
    data = load(xedu[0])
    assert len(data.leads) == 9240
    assert set(data.leaky) == LEAKY
    assert not LEAKY & set(data.feature_names)
    assert not (data.feature_frame() == "Select").any().any()
    assert data.leads["City"].isna().sum() > 2249  # empty and Select both missing
    assert data.roles["TotalVisits"] == "numeric"
    assert data.converted().mean() == pytest.approx(0.3854, abs=1e-4)
    with_leaky = load(xedu_leaky[0])
    assert set(with_leaky.feature_names) >= LEAKY


def test_xeducation_cli_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    assert xeducation.main([str(XEDU), str(out)]) == 0
    assert '"split_time": "2024-10-15T18:00:00"' in capsys.readouterr().out
    before = (out / "leads.csv").stat().st_mtime_ns
    assert xeducation.main([str(XEDU), str(out), "--keep-leaky"]) == 2
    assert "exists" in capsys.readouterr().err
    assert (out / "leads.csv").stat().st_mtime_ns == before
    assert xeducation.main([str(XEDU), str(out), "--keep-leaky", "--overwrite"]) == 0
    assert "leaky" not in (out / "schema.toml").read_text(encoding="utf-8").split("[columns]")[1]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temporary folder left


def test_xeducation_bad_label_writes_nothing(tmp_path: Path) -> None:
    text = (XEDU / "leads.csv").read_text(encoding="utf-8").splitlines()[:6]
    header = text[0].split(",")
    fields = text[3].split(",")
    fields[header.index("Converted")] = "yes"
    text[3] = ",".join(fields)
    src = tmp_path / "leads.csv"
    src.write_text("\n".join(text) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        xeducation.convert(src, tmp_path / "out")
    assert (err.value.file, err.value.row, err.value.column) == ("leads.csv", 4, "Converted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads.csv"]


# --- Maven CRM ---------------------------------------------------------------------------


def test_maven_files_and_rows(maven: tuple[Path, dict[str, Any]]) -> None:
    out, summary = maven
    names = sorted(p.name for p in out.iterdir())
    assert names == ["accounts.csv", "leads.csv", "outcomes.csv", "reps.csv"]
    leads, outcomes = read(out / "leads.csv"), read(out / "outcomes.csv")
    reps, accounts = read(out / "reps.csv"), read(out / "accounts.csv")
    pipeline = read(MAVEN / "sales_pipeline.csv")
    prospecting = set(pipeline.loc[pipeline["deal_stage"] == "Prospecting", "opportunity_id"])
    assert len(prospecting) == summary["dropped_prospecting"] == 500
    assert len(leads) == len(outcomes) == 8300 == summary["leads"]
    assert not prospecting & set(leads["lead_id"])
    assert list(leads.columns) == [
        "lead_id",
        "created_at",
        "account_id",
        "product",
        "series",
        "sales_price",
    ]
    assert list(reps.columns) == ["rep_id", "manager", "regional_office"]
    assert len(reps) == 35 and reps["rep_id"].is_unique
    assert list(outcomes.columns) == [
        "lead_id",
        "rep_id",
        "outcome",
        "assigned_at",
        "closed_at",
        "value",
    ]
    assert summary["outcomes"] == {"won": 4238, "lost": 2473, "open": 1589}
    assert (outcomes["assigned_at"] == leads["created_at"]).all()
    assert ((outcomes["closed_at"] == "") == (outcomes["outcome"] == "open")).all()
    assert (leads["account_id"] == "").sum() == 1088  # open deals without an account
    assert len(accounts) == 85 and "is_customer" in accounts.columns


def test_maven_typos_fixed_and_joins(maven: tuple[Path, dict[str, Any]]) -> None:
    out, summary = maven
    leads, accounts = read(out / "leads.csv"), read(out / "accounts.csv")
    assert "GTXPro" not in set(leads["product"])
    gtx_pro = leads[leads["product"] == "GTX Pro"]
    assert len(gtx_pro) > 0
    assert set(gtx_pro["series"]) == {"GTX"} and set(gtx_pro["sales_price"]) == {"4821"}
    assert (leads["series"] != "").all() and (leads["sales_price"] != "").all()
    assert "technolgy" not in set(accounts["sector"])
    assert (accounts["sector"] == "technology").sum() == 12
    won = read(out / "outcomes.csv")["outcome"] == "won"
    customers = set(leads.loc[won.to_numpy(), "account_id"])
    assert set(accounts.loc[accounts["is_customer"] == "true", "account_id"]) == customers
    assert summary["customers"] == len(customers)


def test_maven_split_time_is_last_two_months(maven: tuple[Path, dict[str, Any]]) -> None:
    out, summary = maven
    assert summary["split_time"] == "2017-11-01"
    created = pd.to_datetime(read(out / "leads.csv")["created_at"])
    assert (created >= pd.Timestamp("2017-11-01")).sum() == summary["test_leads"] == 404
    assert summary["test_closed"] == 347


def test_maven_loads(maven: tuple[Path, dict[str, Any]]) -> None:
    data = load(maven[0])
    assert len(data.leads) == 8300 and len(data.reps) == 35 and len(data.accounts) == 85
    assert {"sector", "revenue", "employees", "product", "sales_price"} <= set(data.feature_names)
    assert "is_customer" not in data.feature_names
    assert data.roles["sales_price"] == "numeric"
    closed = data.outcomes[data.outcomes["outcome"] != "open"]
    assert (closed["outcome"] == "won").mean() == pytest.approx(0.6315, abs=1e-4)


def test_maven_unknown_product_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(MAVEN, src)
    pipeline = read(src / "sales_pipeline.csv")
    pipeline.loc[7, "product"] = "GTX Ultra"
    pipeline.to_csv(src / "sales_pipeline.csv", index=False)
    with pytest.raises(DataError) as err:
        maven_crm.convert(src, tmp_path / "out")
    assert (err.value.file, err.value.row, err.value.column) == (
        "sales_pipeline.csv",
        9,
        "product",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
