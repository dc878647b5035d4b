"""Convert the X Education lead-scoring data set into a leadrank dataset folder.

The source is one CSV, ``leads.csv`` (9,240 leads of an online-course seller, 37 columns,
every line ending in a trailing comma). It becomes (../shared/CONTRACT.md, section 1):

- ``leads.csv``: ``lead_id`` (the ``Lead Number``), ``created_at``, ``source`` (the
  ``Lead Source``), then every other source column under its original name as a feature.
  The data carries no timestamp; ``Lead Number`` grows with arrival, so ``created_at`` is
  synthesised as ``2024-01-01T00:00:00`` plus the lead's arrival rank in hours. Only the
  order is real, which is what a time split needs.
- ``outcomes.csv``: one row per lead, ``won`` where ``Converted`` is 1, else ``lost``;
  ``rep_id`` is empty (the data names no salesperson), so there is no ``reps.csv``.
- ``schema.toml``: ``Select`` (a form field left at its default) means missing; the five
  columns filled in after a salesperson's call are ``leaky`` unless ``keep_leaky``; the
  two ``Asymmetrique * Index`` columns, exact bins of the ``Asymmetrique * Score``
  columns beside them, and every column with a single value are ``ignore``.

``Prospect ID`` (a second id) and ``Converted`` (the label) are not lead columns.

Run: ``python -m examples.xeducation SRC OUT [--keep-leaky] [--overwrite]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from recommender.columns import Columns, Files, Outcome, Role
from recommender.errors import DataError

SOURCE_FILE = "leads.csv"
LEAD_NUMBER = "Lead Number"
PROSPECT_ID = "Prospect ID"
LABEL = "Converted"
LEAD_SOURCE = "Lead Source"

#: Filled in after a salesperson has talked to the lead: they leak the label.
LEAKY = ("Tags", "Lead Quality", "Lead Profile", "Last Activity", "Last Notable Activity")
#: Exact bins of ``Asymmetrique Activity Score`` / ``Asymmetrique Profile Score`` (checked
#: on the shipped file: each index value maps to a disjoint range of scores).
REDUNDANT = ("Asymmetrique Activity Index", "Asymmetrique Profile Index")
#: Placeholders that mean "missing" in this export.
MISSING = ("Select",)

#: The synthetic clock: the first lead arrives here, each next one an hour later.
START = pd.Timestamp("2024-01-01T00:00:00")
STEP = pd.Timedelta(hours=1)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def read_source(src: Path) -> pd.DataFrame:
    """Read the X Education ``leads.csv`` as strings, dropping the empty trailing column.

    Args:
        src: the file itself, or the folder holding ``leads.csv``.

    Raises:
        DataError: the file is missing, lacks a needed column, or an unnamed column holds
            values.
    """
    path = src / SOURCE_FILE if src.is_dir() else src
    if not path.is_file():
        raise DataError(f"not found at {path}", file=SOURCE_FILE)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    for name in [c for c in raw.columns if str(c).startswith("Unnamed:")]:
        if (raw[name] != "").any():
            raise DataError("a column without a header holds values", file=SOURCE_FILE)
        raw = raw.drop(columns=name)
    for name in (LEAD_NUMBER, LABEL, LEAD_SOURCE):
        if name not in raw.columns:
            raise DataError("column is missing", file=SOURCE_FILE, column=name)
    return raw


def _check_source(raw: pd.DataFrame) -> pd.Series:
    """Return ``Lead Number`` as integers after checking ids and labels.

    Raises:
        DataError: naming the first row whose ``Lead Number`` is not a unique integer or
            whose ``Converted`` is not 0 or 1.
    """
    number = pd.to_numeric(raw[LEAD_NUMBER], errors="coerce")
    for column, bad in (
        (LEAD_NUMBER, number.isna() | (number != number.round())),
        (LEAD_NUMBER, number.duplicated()),
        (LABEL, ~raw[LABEL].isin(["0", "1"])),
    ):
        if bad.any():
            row = int(bad.to_numpy().argmax()) + 2  # header is row 1
            value = raw[column].iloc[row - 2]
            raise DataError(f"bad value {value!r}", file=SOURCE_FILE, row=row, column=column)
    return number.astype("int64")


def arrival_order(raw: pd.DataFrame) -> pd.DataFrame:
    """Return the source rows sorted by ``Lead Number`` (arrival order), index 0..n-1.

    Raises:
        DataError: a ``Lead Number`` is not a unique integer or a ``Converted`` not 0 / 1.
    """
    number = _check_source(raw)
    return raw.loc[number.sort_values(kind="stable").index].reset_index(drop=True)


def build_leads(ranked: pd.DataFrame) -> pd.DataFrame:
    """Return the contract ``leads.csv`` table from rows in arrival order.

    ``created_at`` is ``START`` plus the lead's arrival rank in hours.
    """
    created = START + STEP * pd.Series(range(len(ranked)), dtype="int64")
    features = [c for c in ranked.columns if c not in (LEAD_NUMBER, PROSPECT_ID, LABEL)]
    features.remove(LEAD_SOURCE)
    head = pd.DataFrame(
        {
            Columns.LEAD: ranked[LEAD_NUMBER].str.strip(),
            Columns.CREATED: created.dt.strftime(TIME_FORMAT),
            Columns.SOURCE: ranked[LEAD_SOURCE],
        }
    )
    return pd.concat([head, ranked[features]], axis=1)


def build_outcomes(ranked: pd.DataFrame) -> pd.DataFrame:
    """Return ``outcomes.csv``: one row per lead, no rep, ``won`` / ``lost`` from the label."""
    won = ranked[LABEL] == "1"
    return pd.DataFrame(
        {
            Columns.LEAD: ranked[LEAD_NUMBER].str.strip(),
            Columns.REP: "",
            Columns.OUTCOME: won.map({True: Outcome.WON, False: Outcome.LOST}),
        }
    )


def column_roles(leads: pd.DataFrame, *, keep_leaky: bool) -> dict[str, str]:
    """Return the ``schema.toml`` ``[columns]`` roles for ``leads``.

    Leaky columns (unless ``keep_leaky``), redundant index columns and columns with at most
    one distinct value (besides missing and ``Select``) get a role; the rest are inferred
    by the loader.
    """
    roles: dict[str, str] = {}
    contract = {Columns.LEAD, Columns.CREATED, Columns.SOURCE}
    for name in leads.columns:
        if name in contract:
            continue
        values = leads[name][~leads[name].isin(["", *MISSING])]
        if name in LEAKY and not keep_leaky:
            roles[name] = Role.LEAKY
        elif name in REDUNDANT or values.nunique() <= 1:
            roles[name] = Role.IGNORE
    return roles


def render_schema(roles: Mapping[str, str], missing: Sequence[str], comment: str) -> str:
    """Return ``schema.toml`` text: a ``[missing]`` table and a ``[columns]`` table.

    Columns are grouped by role (in ``Role.ALL`` order), in ``roles`` order within a role.

    Names and values are written as TOML basic strings (JSON string escapes are valid
    TOML for the printable text these files hold).
    """
    lines = [f"# {line}" if line else "#" for line in comment.splitlines()]
    lines += ["", "[missing]", f"values = {json.dumps(list(missing))}", "", "[columns]"]
    for role in sorted(set(roles.values()), key=list(Role.ALL).index):
        lines += [f"{json.dumps(name)} = {json.dumps(r)}" for name, r in roles.items() if r == role]
    return "\n".join(lines) + "\n"


def split_index(n: int, test_share: float) -> int:
    """Return the arrival rank of the first lead of the last ``test_share`` of ``n`` leads.

    Raises:
        ValueError: ``test_share`` is not in (0, 1) or ``n`` is below 2.
    """
    if not 0.0 < test_share < 1.0 or n < 2:
        raise ValueError("test_share must be in (0, 1) and there must be 2 leads or more")
    return min(max(n - math.ceil(n * test_share), 1), n - 1)


def write_folder(out: Path, files: Mapping[str, pd.DataFrame | str], *, overwrite: bool) -> None:
    """Write ``files`` (name -> table or text) into the folder ``out``, all or nothing.

    Everything is written into a hidden temporary folder beside ``out``, which is then
    renamed to ``out``; on any error nothing is left at ``out``.

    Raises:
        FileExistsError: ``out`` exists and is not an empty folder, and not ``overwrite``.
    """
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, content in files.items():
            if isinstance(content, str):
                (tmp / name).write_text(content, encoding="utf-8")
            else:
                content.to_csv(tmp / name, index=False, lineterminator="\n")
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(trash / out.name)
            tmp.rename(out)
            shutil.rmtree(trash)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def convert(
    src: Path,
    out: Path,
    *,
    keep_leaky: bool = False,
    test_share: float = 0.25,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Convert X Education ``src`` into the dataset folder ``out``.

    Args:
        src: ``leads.csv`` or the folder holding it.
        out: the dataset folder to create (must not exist or be empty, unless ``overwrite``).
        keep_leaky: write the post-contact columns as ordinary features (for the
            with / without comparison) instead of declaring them ``leaky``.
        test_share: share of the latest leads the suggested split leaves for testing.
        overwrite: replace an existing ``out``.

    Returns:
        ``leads``, ``converted``, ``conversion_rate``, ``split_time`` (``created_at`` of the
        first lead of the last ``test_share``: pass it to ``leadrank evaluate
        --split-time``), ``train_leads``, ``test_leads``, ``test_conversion_rate``,
        ``leaky`` and ``ignored`` (column names).

    Raises:
        DataError: the source is missing, malformed or lacks a column.
        FileExistsError: ``out`` is not empty and not ``overwrite``.
    """
    ranked = arrival_order(read_source(src))
    cut = split_index(len(ranked), test_share)
    leads = build_leads(ranked)
    outcomes = build_outcomes(ranked)
    roles = column_roles(leads, keep_leaky=keep_leaky)
    comment = (
        "X Education leads converted by examples/xeducation.py.\n"
        "created_at is synthetic: arrival rank (by Lead Number) in hours after 2024-01-01.\n"
        + ("Post-contact columns kept as features (--keep-leaky).\n" if keep_leaky else "")
    )
    schema = render_schema(roles, MISSING, comment)
    write_folder(
        out,
        {Files.LEADS: leads, Files.OUTCOMES: outcomes, Files.SCHEMA: schema},
        overwrite=overwrite,
    )
    is_won = outcomes[Columns.OUTCOME] == Outcome.WON  # aligned with leads, row by row
    return {
        "leads": len(leads),
        "converted": int(is_won.sum()),
        "conversion_rate": round(float(is_won.mean()), 4),
        "split_time": str(leads[Columns.CREATED].iloc[cut]),
        "train_leads": cut,
        "test_leads": len(leads) - cut,
        "test_conversion_rate": round(float(is_won.iloc[cut:].mean()), 4),
        "leaky": [n for n, r in roles.items() if r == Role.LEAKY],
        "ignored": [n for n, r in roles.items() if r == Role.IGNORE],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: convert, print the summary as JSON on stdout; 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.xeducation",
        description="Convert the X Education leads.csv into a leadrank dataset folder.",
    )
    parser.add_argument("src", type=Path, help="x-education folder or its leads.csv")
    parser.add_argument("out", type=Path, help="dataset folder to create")
    parser.add_argument(
        "--keep-leaky",
        action="store_true",
        help="keep the post-contact columns as features instead of declaring them leaky",
    )
    parser.add_argument("--test-share", type=float, default=0.25, help="default: 0.25")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    try:
        summary = convert(
            args.src,
            args.out,
            keep_leaky=args.keep_leaky,
            test_share=args.test_share,
            overwrite=args.overwrite,
        )
    except (DataError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
