"""Tests of recommender.rules: parsing, errors with line numbers, vectorised eligibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.errors import DataError
from recommender.rules import (
    RULES_FILE,
    Literal,
    Ref,
    batch_key,
    batch_keys,
    eligibility,
    explain,
    find_rules,
    load_rules,
    parse_rules,
)

LEADS = pd.DataFrame(
    {
        "region": ["EU", "EU", "US", None],
        "employees": [1000.0, 10.0, np.nan, 600.0],
        "country": ["DE", "FR", "US", "DE"],
    }
)
REPS = pd.DataFrame(
    {
        "region": ["EU", "US", "EU", "EU"],
        "team": ["Enterprise", "SMB", "Intern", "SMB"],
        "german": [True, False, True, False],
        "level": [3, 1, 2, 1],
    }
)


def mask(text: str, leads: pd.DataFrame = LEADS, reps: pd.DataFrame = REPS) -> list[list[int]]:
    got: list[list[int]] = eligibility(parse_rules(text), leads, reps).astype(int).tolist()
    return got


def test_parse_the_documented_forms() -> None:
    rules = parse_rules(
        "# comment\n\nlead.region == rep.region\n"
        'lead.employees >= 500 -> rep.team == "Enterprise"  # big ones\n'
        "rep.team != 'Intern'\n"
        'lead.country in ("DE", "AT") -> rep.german == true and rep.level >= 2\n'
    )
    assert [r.line for r in rules] == [3, 4, 5, 6]
    assert rules[0].condition[0].left == Ref("lead", "region")
    assert rules[1].antecedent[0].right == Literal(500.0)
    assert rules[1].text == 'lead.employees >= 500 -> rep.team == "Enterprise"'
    assert len(rules[3].condition) == 2


def test_same_region_rule() -> None:
    # a missing lead region does not restrict (last lead)
    assert mask("lead.region == rep.region") == [[1, 0, 1, 1], [1, 0, 1, 1], [0, 1, 0, 0], [1] * 4]


def test_implication_only_binds_where_the_lead_condition_holds() -> None:
    # lead 2 has no employee count: the rule does not restrict it
    got = mask('lead.employees >= 500 -> rep.team == "Enterprise"')
    assert got == [[1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 0, 0]]


def test_rep_only_rule_and_combination() -> None:
    assert mask('rep.team != "Intern"') == [[1, 1, 0, 1]] * 4
    text = (
        "lead.region == rep.region\n"
        'lead.employees >= 500 -> rep.team == "Enterprise"\n'
        'rep.team != "Intern"\n'
        'lead.country in ("DE", "AT") -> rep.german == TRUE and rep.level >= 2\n'
    )
    assert mask(text) == [[1, 0, 0, 0], [1, 0, 0, 1], [0, 1, 0, 0], [1, 0, 0, 0]]


def test_in_not_in_and_numeric_lead_vs_rep() -> None:
    assert mask("rep.level not in [1, 3]") == [[0, 0, 1, 0]] * 4
    leads = pd.DataFrame({"min_level": ["2", None, "1"]})
    assert mask("rep.level >= lead.min_level", leads=leads) == [[1, 0, 1, 0], [1] * 4, [1] * 4]


def test_text_order_and_booleans_read_from_text() -> None:
    reps = pd.DataFrame({"flag": ["True", "false", None], "name": ["b", "a", "c"]})
    leads = pd.DataFrame({"start": ["b"]})
    assert mask("rep.flag == true", leads=leads, reps=reps) == [[1, 0, 1]]
    assert mask("rep.name >= lead.start", leads=leads, reps=reps) == [[1, 0, 1]]


def test_backtick_column_and_hash_inside_quotes() -> None:
    reps = pd.DataFrame({"sales team": ["A#1", "B"]})
    leads = pd.DataFrame({"x": [1]})
    assert mask('rep.`sales team` == "A#1"  # note', leads=leads, reps=reps) == [[1, 0]]


@pytest.mark.parametrize(
    "line",
    [
        "lead.x = 3",
        "lead.x ==",
        "region == rep.region",
        '"a" == "b"',
        "lead.a in 3",
        "lead.a -> rep.b == 1",
        "lead.a == 1 -> rep.b == 1 -> rep.c == 2",
        '__import__("os").system("true")',
        "lead.a == 1 or rep.b == 2",
        "lead.a in (1, rep.b)",
    ],
)
def test_bad_lines_name_the_file_and_line(line: str) -> None:
    with pytest.raises(DataError) as info:
        parse_rules("rep.team != 'Intern'\n\n" + line, file="rules.txt")
    assert info.value.file == "rules.txt" and info.value.row == 3 and info.value.column is None


def test_unknown_column_is_named() -> None:
    rules = parse_rules("\nrep.team == lead.segment\n")
    with pytest.raises(DataError) as info:
        eligibility(rules, LEADS, REPS)
    assert (info.value.row, info.value.column) == (2, "segment")


def test_load_and_find_rules(tmp_path: Path) -> None:
    assert find_rules(tmp_path) == []
    (tmp_path / RULES_FILE).write_text('rep.team != "Intern"\nrep.team ==\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"rules.txt, row 2"):
        find_rules(tmp_path)
    (tmp_path / RULES_FILE).write_text('rep.team != "Intern"\n', encoding="utf-8")
    assert len(load_rules(tmp_path / RULES_FILE)) == 1
    with pytest.raises(DataError, match="cannot read"):
        load_rules(tmp_path / "missing.txt")


def test_explain_names_the_blocking_rules() -> None:
    text = 'lead.region == rep.region\nrep.team != "Intern"\nlead.country != "US"'
    got, why = explain(parse_rules(text), LEADS, REPS, among=np.array([True, False, True, True]))
    np.testing.assert_array_equal(got, eligibility(parse_rules(text), LEADS, REPS))
    assert why[0] is None and why[1] is None
    assert why[2] == 'lead.region == rep.region; lead.country != "US"'
    leads = pd.DataFrame({"region": ["US"], "employees": [1.0], "country": ["FR"]})
    reps = pd.DataFrame({"region": ["EU", "US"], "team": ["SMB", "Intern"]})
    assert explain(parse_rules(text), leads, reps)[1] == [
        'combination of: lead.region == rep.region; rep.team != "Intern"'
    ]


def test_no_rules_allow_everything_and_scale() -> None:
    rng = np.random.default_rng(0)
    leads = pd.DataFrame(
        {"region": rng.choice(["EU", "US", "APAC"], 2000), "size": rng.integers(1, 2000, 2000)}
    )
    reps = pd.DataFrame(
        {"region": rng.choice(["EU", "US", "APAC"], 300), "team": rng.choice(["Ent", "SMB"], 300)}
    )
    assert eligibility([], leads, reps).all()
    got = eligibility(
        parse_rules('lead.region == rep.region\nlead.size >= 500 -> rep.team == "Ent"'), leads, reps
    )
    want = (leads["region"].to_numpy()[:, None] == reps["region"].to_numpy()[None, :]) & (
        (leads["size"].to_numpy()[:, None] < 500) | (reps["team"].to_numpy()[None, :] == "Ent")
    )
    np.testing.assert_array_equal(got, want)


def test_leads_with_equal_batch_keys_are_checked_together_as_apart() -> None:
    rules = parse_rules("rep.level >= lead.min_level\nlead.region == rep.region")
    a = pd.DataFrame({"min_level": ["2", None], "region": ["EU", "US"]})
    b = pd.DataFrame({"min_level": ["1", "3"], "region": ["US", None]})
    odd = pd.DataFrame({"min_level": ["senior"], "region": ["EU"]})  # not a number
    reps = REPS.assign(level=["3", "1", "2", "1"])
    assert batch_key(rules, a) == batch_key(rules, b) != batch_key(rules, odd)
    together = eligibility(rules, pd.concat([a, b], ignore_index=True), reps)
    apart = np.vstack([eligibility(rules, a, reps), eligibility(rules, b, reps)])
    np.testing.assert_array_equal(together, apart)
    # Why the key matters: with the odd lead in the batch, "2" and "10" compare as text.
    c = pd.DataFrame({"min_level": ["10"], "region": ["EU"]})
    mixed = eligibility(rules, pd.concat([c, odd], ignore_index=True), reps)
    assert not np.array_equal(mixed[:1], eligibility(rules, c, reps))
    literal = parse_rules("lead.size >= 500")  # a literal decides the type
    assert batch_key(literal, pd.DataFrame({"size": ["x"]})) == batch_key(
        literal, pd.DataFrame({"size": ["900"]})
    )
    # ...but a lead column missing altogether is an error alone: never batch it with others
    assert batch_key(literal, a) != batch_key(literal, pd.DataFrame({"size": ["900"]}))
    assert batch_key(rules, a.drop(columns="min_level"))[0] is None


def test_batch_keys_of_parts_equal_each_part_keyed_alone() -> None:
    rules = parse_rules("rep.level >= lead.min_level\nlead.region == rep.region\nlead.size >= 500")
    parts = [
        pd.DataFrame({"min_level": ["2", None], "region": ["EU", "US"], "size": ["1", "x"]}),
        pd.DataFrame({"min_level": ["senior"], "region": ["9"], "size": [None]}),
        pd.DataFrame({"min_level": [None, None], "region": [None, "EU"], "size": ["7", "8"]}),
        pd.DataFrame({"min_level": ["1e1"], "region": ["1"], "size": ["900"]}),
    ]
    whole = pd.concat(parts, ignore_index=True)
    ends = np.cumsum([len(p) for p in parts])
    rows = [np.arange(end - len(p), end) for p, end in zip(parts, ends, strict=True)]
    keys = batch_keys(rules, whole, rows)
    assert keys == [batch_key(rules, p) for p in parts]
    assert len(set(keys)) == 3  # the parts differ, so the check can fail
    assert batch_keys(rules, whole, []) == []
    numbers = pd.DataFrame({"min_level": [1.0, np.nan], "region": [True, False], "size": [1, 2]})
    assert batch_keys(rules, numbers, [np.arange(1), np.arange(1, 2)]) == [
        batch_key(rules, numbers.iloc[:1]),
        batch_key(rules, numbers.iloc[1:]),
    ]


def test_text_of_plain_strings_is_what_pandas_strings_give() -> None:
    # Columns of strings and None (parsed leads, reps) skip pandas' string dtype; the
    # text compared must be the one pandas gives for every other column.
    from recommender.rules import _as_text

    rng = np.random.default_rng(3)
    pool = np.array(
        ["EU", " eu ", "", "10", " 2.5", "Zürich", "ZÜRICH", "true", None], dtype=object
    )
    for _ in range(50):
        values = rng.choice(pool, size=int(rng.integers(0, 12)))
        for fold in (False, True):
            want = pd.Series(values, dtype=object).astype(pd.StringDtype("python")).str.strip()
            if fold:
                want = want.str.lower()
            expected = [None if pd.isna(v) else v for v in want.astype(object)]
            assert _as_text(pd.Series(values, dtype=object), fold).tolist() == expected
    mixed = pd.Series(np.array([3, 2.5, None, np.nan, " a "], dtype=object))
    assert _as_text(mixed, False).tolist() == ["3", "2.5", None, None, "a"]
