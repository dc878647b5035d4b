"""Convert Maven Analytics' "CRM Sales Opportunities" into a leadrank dataset folder.

The source folder holds ``sales_pipeline.csv`` (8,800 opportunities of a fictional B2B
seller), ``accounts.csv``, ``products.csv`` and ``sales_teams.csv``. It becomes
(../shared/CONTRACT.md, section 1):

- ``leads.csv``: one row per opportunity: ``lead_id`` (``opportunity_id``), ``created_at``
  (``engage_date``), ``account_id`` (empty where the pipeline leaves it empty), and the
  features ``product``, ``series``, ``sales_price`` joined from ``products.csv``. The data
  has no channel, so there is no ``source``.
- ``reps.csv``: every agent of ``sales_teams.csv``: ``rep_id``, ``manager``,
  ``regional_office`` (five agents have no opportunity; they are reps all the same).
- ``outcomes.csv``: ``lead_id``, ``rep_id`` (``sales_agent``), ``outcome`` (Won -> won,
  Lost -> lost, Engaging -> open), ``assigned_at`` (``engage_date``), ``closed_at``
  (``close_date``), ``value`` (``close_value``).
- ``accounts.csv``: ``account_id`` and the firmographics, with ``is_customer`` true where
  the account has a won opportunity (a snapshot at export time: used to pick lookalike
  seeds, never as a feature).

Prospecting opportunities (500 in the shipped file) have no ``engage_date``, no close and
no outcome: they are left out, since any ``created_at`` given them would be invented and
they carry nothing to learn or to test. Shipped typos are fixed: the product ``GTXPro`` is
``GTX Pro`` and the sector ``technolgy`` is ``technology``.

Run: ``python -m examples.maven_crm SRC OUT [--overwrite]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from examples.xeducation import write_folder
from recommender.columns import Columns, Files, Outcome
from recommender.errors import DataError

PIPELINE = "sales_pipeline.csv"
ACCOUNTS = "accounts.csv"
PRODUCTS = "products.csv"
TEAMS = "sales_teams.csv"

PIPELINE_COLUMNS = (
    "opportunity_id",
    "sales_agent",
    "product",
    "account",
    "deal_stage",
    "engage_date",
    "close_date",
    "close_value",
)
ACCOUNT_COLUMNS = (
    "account",
    "sector",
    "year_established",
    "revenue",
    "employees",
    "office_location",
    "subsidiary_of",
)
PRODUCT_COLUMNS = ("product", "series", "sales_price")
TEAM_COLUMNS = ("sales_agent", "manager", "regional_office")

#: deal_stage -> outcome; ``Prospecting`` rows are dropped (no date, no outcome).
STAGES = {"Won": Outcome.WON, "Lost": Outcome.LOST, "Engaging": Outcome.OPEN}
PROSPECTING = "Prospecting"
#: Misspellings as shipped -> the spelling used elsewhere in the data.
PRODUCT_FIXES = {"GTXPro": "GTX Pro"}
SECTOR_FIXES = {"technolgy": "technology"}
DATE_FORMAT = "%Y-%m-%d"


def read_table(src: Path, name: str, columns: Sequence[str]) -> pd.DataFrame:
    """Read ``src/name`` as strings (empty cells are ``""``), checking ``columns`` exist.

    Raises:
        DataError: the file or a column is missing.
    """
    path = src / name
    if not path.is_file():
        raise DataError(f"not found in {src}", file=name)
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    table.columns = [str(c).strip() for c in table.columns]
    for column in columns:
        if column not in table.columns:
            raise DataError("column is missing", file=name, column=column)
    table = table[list(columns)]
    for column in columns:
        table[column] = table[column].str.strip()
    return table


def _fail_first(bad: pd.Series, table: pd.DataFrame, file: str, column: str, what: str) -> None:
    """Raise a DataError naming the first row where ``bad`` is true, if any."""
    if bad.any():
        at = int(bad.to_numpy().argmax())
        value = table[column].iloc[at]
        raise DataError(f"{what}: {value!r}", file=file, row=at + 2, column=column)


def _check_unique(table: pd.DataFrame, file: str, column: str) -> None:
    """Raise a DataError at the first empty or repeated id of ``column``."""
    _fail_first(table[column] == "", table, file, column, "empty id")
    _fail_first(table[column].duplicated(), table, file, column, "duplicate id")


def _check_dates(table: pd.DataFrame, file: str, column: str, required: pd.Series) -> None:
    """Raise a DataError at the first unparsable date, or missing one where ``required``."""
    parsed = pd.to_datetime(table[column], format=DATE_FORMAT, errors="coerce")
    _fail_first(required & (table[column] == ""), table, file, column, "date missing")
    _fail_first((table[column] != "") & parsed.isna(), table, file, column, "not a date")


def check_pipeline(
    pipeline: pd.DataFrame, products: pd.DataFrame, teams: pd.DataFrame, accounts: pd.DataFrame
) -> None:
    """Check the opportunities against each other and the other tables.

    Raises:
        DataError: naming file, row and column of the first empty or duplicate id, unknown
            stage, agent, product or account, missing or unparsable date.
    """
    _check_unique(pipeline, PIPELINE, "opportunity_id")
    stages = pipeline["deal_stage"]
    _fail_first(
        ~stages.isin([*STAGES, PROSPECTING]), pipeline, PIPELINE, "deal_stage", "unknown stage"
    )
    known = {
        "sales_agent": set(teams["sales_agent"]),
        "product": set(products["product"]),
        "account": {*accounts["account"], ""},
    }
    for column, ids in known.items():
        _fail_first(~pipeline[column].isin(ids), pipeline, PIPELINE, column, f"unknown {column}")
    dated = stages != PROSPECTING
    _check_dates(pipeline, PIPELINE, "engage_date", dated)
    _check_dates(pipeline, PIPELINE, "close_date", stages.isin(["Won", "Lost"]))
    value = pd.to_numeric(pipeline["close_value"].replace("", "0"), errors="coerce")
    _fail_first(value.isna() | (value < 0), pipeline, PIPELINE, "close_value", "not a number >= 0")


def build_tables(src: Path) -> tuple[dict[str, pd.DataFrame], int]:
    """Read and check the four source files; return the contract tables and rows dropped.

    Returns:
        (``{file name: table}`` for ``leads.csv``, ``reps.csv``, ``outcomes.csv``,
        ``accounts.csv``; the number of Prospecting opportunities left out).

    Raises:
        DataError: a file, column or id is missing or malformed (see :func:`check_pipeline`).
    """
    pipeline = read_table(src, PIPELINE, PIPELINE_COLUMNS)
    accounts = read_table(src, ACCOUNTS, ACCOUNT_COLUMNS)
    products = read_table(src, PRODUCTS, PRODUCT_COLUMNS)
    teams = read_table(src, TEAMS, TEAM_COLUMNS)
    for table, file, column in (
        (accounts, ACCOUNTS, "account"),
        (products, PRODUCTS, "product"),
        (teams, TEAMS, "sales_agent"),
    ):
        _check_unique(table, file, column)
    pipeline["product"] = pipeline["product"].replace(PRODUCT_FIXES)
    accounts["sector"] = accounts["sector"].replace(SECTOR_FIXES)
    check_pipeline(pipeline, products, teams, accounts)

    kept = pipeline[pipeline["deal_stage"] != PROSPECTING].reset_index(drop=True)
    joined = kept.merge(products, on="product", how="left", validate="many_to_one")
    leads = pd.DataFrame(
        {
            Columns.LEAD: joined["opportunity_id"],
            Columns.CREATED: joined["engage_date"],
            Columns.ACCOUNT: joined["account"],
            "product": joined["product"],
            "series": joined["series"],
            "sales_price": joined["sales_price"],
        }
    )
    outcomes = pd.DataFrame(
        {
            Columns.LEAD: kept["opportunity_id"],
            Columns.REP: kept["sales_agent"],
            Columns.OUTCOME: kept["deal_stage"].map(STAGES),
            Columns.ASSIGNED: kept["engage_date"],
            Columns.CLOSED: kept["close_date"],
            Columns.VALUE: kept["close_value"],
        }
    )
    reps = teams.rename(columns={"sales_agent": Columns.REP})
    won_accounts = set(kept.loc[kept["deal_stage"] == "Won", "account"])
    firms = accounts.rename(columns={"account": Columns.ACCOUNT})
    firms[Columns.IS_CUSTOMER] = (
        firms[Columns.ACCOUNT].isin(won_accounts).map({True: "true", False: "false"})
    )
    tables = {
        Files.LEADS: leads,
        Files.REPS: reps,
        Files.OUTCOMES: outcomes,
        Files.ACCOUNTS: firms,
    }
    return tables, len(pipeline) - len(kept)


def split_time(outcomes: pd.DataFrame, test_months: int) -> pd.Timestamp:
    """Return the first day of the last ``test_months`` calendar months of the data.

    The data's last month is that of its latest ``assigned_at`` or ``closed_at`` date.

    Raises:
        ValueError: ``test_months`` is below 1, or there is no date.
    """
    if test_months < 1:
        raise ValueError("test_months must be 1 or more")
    dates = pd.to_datetime(
        pd.concat([outcomes[Columns.ASSIGNED], outcomes[Columns.CLOSED]]).replace("", None),
        format=DATE_FORMAT,
    )
    if dates.isna().all():
        raise ValueError("no dates to split on")
    last = dates.max()
    return pd.Timestamp(year=last.year, month=last.month, day=1) - pd.DateOffset(
        months=test_months - 1
    )


def convert(
    src: Path, out: Path, *, test_months: int = 2, overwrite: bool = False
) -> dict[str, Any]:
    """Convert the Maven CRM folder ``src`` into the dataset folder ``out``.

    Args:
        src: the folder holding ``sales_pipeline.csv``, ``accounts.csv``, ``products.csv``
            and ``sales_teams.csv``.
        out: the dataset folder to create (must not exist or be empty, unless ``overwrite``).
        test_months: calendar months at the end of the data the suggested split tests on.
        overwrite: replace an existing ``out``.

    Returns:
        ``leads``, ``reps``, ``accounts``, ``customers``, ``outcomes`` (counts by outcome),
        ``dropped_prospecting``, ``win_rate`` (won / closed), ``split_time`` (ISO date: pass
        it to ``leadrank evaluate --split-time``), ``test_leads`` (created at or after it),
        ``test_closed`` and ``test_win_rate`` (their closed ones).

    Raises:
        DataError: a source file, column or id is missing or malformed.
        FileExistsError: ``out`` is not empty and not ``overwrite``.
    """
    tables, dropped = build_tables(src)
    outcomes = tables[Files.OUTCOMES]
    split = split_time(outcomes, test_months)
    write_folder(out, tables, overwrite=overwrite)

    created = pd.to_datetime(tables[Files.LEADS][Columns.CREATED], format=DATE_FORMAT)
    test = (created >= split).to_numpy()  # leads and outcomes are aligned row by row
    closed = outcomes[Columns.OUTCOME].isin([Outcome.WON, Outcome.LOST]).to_numpy()
    won = (outcomes[Columns.OUTCOME] == Outcome.WON).to_numpy()
    return {
        "leads": len(tables[Files.LEADS]),
        "reps": len(tables[Files.REPS]),
        "accounts": len(tables[Files.ACCOUNTS]),
        "customers": int((tables[Files.ACCOUNTS][Columns.IS_CUSTOMER] == "true").sum()),
        "outcomes": {o: int((outcomes[Columns.OUTCOME] == o).sum()) for o in Outcome.ALL},
        "dropped_prospecting": dropped,
        "win_rate": round(float(won[closed].mean()), 4),
        "split_time": split.strftime(DATE_FORMAT),
        "test_leads": int(test.sum()),
        "test_closed": int((test & closed).sum()),
        "test_win_rate": round(float(won[test & closed].mean()), 4)
        if (test & closed).any()
        else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: convert, print the summary as JSON on stdout; 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.maven_crm",
        description="Convert the Maven CRM Sales Opportunities folder into a dataset folder.",
    )
    parser.add_argument("src", type=Path, help="maven-crm folder (sales_pipeline.csv, ...)")
    parser.add_argument("out", type=Path, help="dataset folder to create")
    parser.add_argument("--test-months", type=int, default=2, help="default: 2")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    try:
        summary = convert(
            args.src, args.out, test_months=args.test_months, overwrite=args.overwrite
        )
    except (DataError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
