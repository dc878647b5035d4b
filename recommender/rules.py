"""Eligibility rules: which rep may take which lead, read from a small text file.

The file (``rules.txt`` in a dataset or model folder) holds one rule per line; blank lines
and text after ``#`` are ignored. A rule is a condition, or an implication ``A -> B``
("where the lead matches A, the rep must match B")::

    # same region only
    lead.region == rep.region
    # big accounts only to the Enterprise team
    lead.employees >= 500 -> rep.team == "Enterprise"
    rep.team != "Intern"
    lead.country in ("DE", "AT", "CH") -> rep.speaks_german == true and rep.level >= 2

Grammar: a condition is one or more comparisons joined by ``and``. A comparison is
``operand OP operand`` with ``OP`` one of ``== != < <= > >=``, or ``operand in (lit, ...)``
/ ``operand not in (lit, ...)`` (brackets ``[...]`` work too). An operand is a column
reference ``lead.NAME`` or ``rep.NAME`` (``lead.`a name``` with backticks for names with
spaces), a string in single or double quotes, a number, or ``true`` / ``false``.

Semantics, per (lead, rep) pair:

* A comparison is numeric when a side is a number literal or both columns hold only numbers
  (non-numeric text in such a column counts as missing); else the values are compared as
  text (``true``/``false`` match booleans and text case-insensitively).
* A missing value (empty cell) on either side of any comparison of a rule makes that rule
  not restrict the pair: unknown data never blocks a lead.
* A pair is eligible when every rule allows it.

The parser is a small tokenizer and recursive descent; nothing is ever evaluated as Python.
Bad lines raise ``DataError`` naming the file and the line; a rule naming a column that the
leads or reps do not have raises ``DataError`` naming the line and the column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recommender.errors import DataError

RULES_FILE = "rules.txt"
COMPARATORS = ("==", "!=", "<", "<=", ">", ">=")
BoolArray = NDArray[np.bool_]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<op>->|==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
    | (?P<ref>(?:lead|rep)\.(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]+`))
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_CLOSE = {"(": ")", "[": "]"}


@dataclass(frozen=True)
class Ref:
    """A column of the lead (``side == "lead"``) or of the rep (``side == "rep"``)."""

    side: str
    column: str


@dataclass(frozen=True)
class Literal:
    """A constant: ``str``, ``float`` or ``bool``."""

    value: str | float | bool


Operand = Ref | Literal


@dataclass(frozen=True)
class Comparison:
    """``left op right``; for ``in`` / ``not in``, ``right`` is a tuple of literals."""

    left: Operand
    op: str
    right: Operand | tuple[Literal, ...]


@dataclass(frozen=True)
class Rule:
    """One line of the rules file.

    Attributes:
        condition: comparisons (joined by ``and``) a pair must meet; for an implication the
            consequent ``B`` of ``A -> B``.
        antecedent: the ``A`` of ``A -> B``; empty for a plain condition.
        text: the line as written (without comment), used in messages.
        line: 1-based line number in the file.
        file: the file name, for messages.
    """

    condition: tuple[Comparison, ...]
    antecedent: tuple[Comparison, ...] = ()
    text: str = ""
    line: int = 0
    file: str = RULES_FILE


def load_rules(path: Path) -> list[Rule]:
    """Read and parse a rules file.

    Raises:
        DataError: if the file cannot be read or a line does not parse.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the rules file: {exc}", file=Path(path).name) from exc
    return parse_rules(text, file=Path(path).name)


def find_rules(folder: Path) -> list[Rule]:
    """The rules of ``folder/rules.txt``, or an empty list when the folder has none.

    Raises:
        DataError: if the file exists but does not parse.
    """
    path = Path(folder) / RULES_FILE
    return load_rules(path) if path.is_file() else []


def parse_rules(text: str, *, file: str = RULES_FILE) -> list[Rule]:
    """Parse the text of a rules file (format in the module docstring).

    Raises:
        DataError: naming ``file`` and the line number of the first line that does not parse.
    """
    rules = []
    for number, raw in enumerate(text.splitlines(), start=1):
        body = _strip_comment(raw).strip()
        if not body:
            continue
        try:
            rules.append(_parse_line(body, number, file))
        except ValueError as exc:
            raise DataError(f"bad rule {body!r}: {exc}", file=file, row=number) from exc
    return rules


def eligibility(rules: list[Rule], leads: pd.DataFrame, reps: pd.DataFrame) -> BoolArray:
    """``(n_leads, n_reps)`` bool: ``True`` where every rule lets the rep take the lead.

    Raises:
        DataError: if a rule names a column that the leads or the reps do not have.
    """
    mask = np.ones((len(leads), len(reps)), dtype=bool)
    for rule in rules:
        mask &= _rule_mask(rule, leads, reps)
    return mask


def _lead_refs(rules: list[Rule]) -> Iterator[tuple[str, bool]]:
    """Every lead column the comparisons of ``rules`` name, in order, with whether its
    comparison has no literal (its type is then read off the columns)."""
    for rule in rules:
        for comp in (*rule.antecedent, *rule.condition):
            right = comp.right if isinstance(comp.right, tuple) else (comp.right,)
            sides = (comp.left, *right)
            typed = not any(isinstance(s, Literal) for s in sides)
            for s in sides:
                if isinstance(s, Ref) and s.side == "lead":
                    yield s.column, typed


def lead_columns(rules: list[Rule]) -> list[str]:
    """The lead columns ``rules`` read, in the order they first name them."""
    return list(dict.fromkeys(column for column, _ in _lead_refs(rules)))


def batch_key(rules: list[Rule], leads: pd.DataFrame) -> tuple[bool | None, ...]:
    """What the rules read off ``leads`` as a whole: for each lead column a comparison
    names, whether the column is there, and for a comparison without a literal, whether
    it holds only numbers.

    That is all a rule takes from the leads together (a missing column is an error; see
    "Semantics" above: a comparison is numeric when both columns hold only numbers);
    everything else is decided pair by pair. So leads checked in groups whose keys are
    equal get exactly the eligibility (or the error) they would get checked together,
    and a service may route such groups in one batch. ``None`` stands for a column the
    leads do not have, ``True`` for one that is there where its type does not matter.
    """
    return batch_keys(rules, leads, [np.arange(len(leads))])[0]


def batch_keys(
    rules: list[Rule], leads: pd.DataFrame, parts: Sequence[np.ndarray]
) -> list[tuple[bool | None, ...]]:
    """:func:`batch_key` of each part of ``leads`` (row positions), in one pass.

    Whether a column holds only numbers is decided value by value (booleans never,
    a numeric column always), so a part's key is the one its rows would have on their
    own, provided those rows alone would come with the same columns and column types:
    a caller keys together only leads parsed alike (for a service: requests whose leads
    name the same columns).
    """
    numeric: dict[str, np.ndarray | bool] = {}  # per column: each row numeric or missing
    slots: list[str | None] = []  # per key slot: the typed column it checks, or None
    fixed: list[bool | None] = []  # per key slot: its value when it checks no type
    for column, typed in _lead_refs(rules):
        if column not in leads.columns:
            slots.append(None)
            fixed.append(None)
        elif not typed:
            slots.append(None)
            fixed.append(True)
        else:
            if column not in numeric:
                numeric[column] = _numeric_rows(leads[column])
            slots.append(column)
            fixed.append(None)
    keys: list[tuple[bool | None, ...]] = []
    for rows in parts:
        key: list[bool | None] = []
        for slot, value in zip(slots, fixed, strict=True):
            if slot is None:
                key.append(value)
                continue
            ok = numeric[slot]
            key.append(ok if isinstance(ok, bool) else bool(ok[rows].all()))
        keys.append(tuple(key))
    return keys


def explain(
    rules: list[Rule], leads: pd.DataFrame, reps: pd.DataFrame, among: BoolArray | None = None
) -> tuple[BoolArray, list[str | None]]:
    """Eligibility plus, for each lead left with no rep, the rules that block it.

    Args:
        rules: parsed rules.
        leads: one row per lead.
        reps: one row per rep.
        among: optional ``(n_reps,)`` bool, the reps to consider (for example the active
            ones); default all.

    Returns:
        The eligibility mask and, per lead, ``None`` where some considered rep is eligible,
        else the texts of the rules that alone exclude every considered rep (joined by
        ``"; "``), or ``"combination of: ..."`` naming every rule that excludes one of them;
        pass it to ``recommender.routing.route(..., eligible_why=...)``.

    Raises:
        DataError: if a rule names an unknown column.
    """
    n, m = len(leads), len(reps)
    reps_on = np.ones(m, dtype=bool) if among is None else np.asarray(among, dtype=bool)
    mask = np.ones((n, m), dtype=bool)
    alone: list[BoolArray] = []
    some: list[BoolArray] = []
    for rule in rules:
        ok = _rule_mask(rule, leads, reps)
        mask &= ok
        alone.append(~(ok & reps_on).any(axis=1))
        some.append((~ok & reps_on).any(axis=1))
    blocked = ~(mask & reps_on).any(axis=1)
    why: list[str | None] = [None] * n
    for i in np.flatnonzero(blocked):
        single = [r.text for r, a in zip(rules, alone, strict=True) if a[i]]
        if single:
            why[i] = "; ".join(single)
        elif rules:
            why[i] = "combination of: " + "; ".join(
                r.text for r, s in zip(rules, some, strict=True) if s[i]
            )
    return mask, why


def _strip_comment(line: str) -> str:
    """The line up to the first ``#`` outside quotes."""
    quote = None
    for pos, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:pos]
    return line


def _tokenize(body: str) -> list[tuple[str, str]]:
    """Split a line into ``(kind, text)`` tokens.

    Raises:
        ValueError: at the first character that starts no token.
    """
    tokens = []
    pos = 0
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        if match is None or match.end() == pos or match.lastgroup is None:
            raise ValueError(f"unexpected text at column {pos + 1}: {body[pos:]!r}")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        pos = match.end()
        while pos < len(body) and body[pos].isspace():
            pos += 1
    return tokens


class _Parser:
    """Recursive descent over the tokens of one line."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ValueError("the rule ends too early")
        self.pos += 1
        return token

    def is_word(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].lower() == word

    def condition(self) -> tuple[Comparison, ...]:
        parts = [self.comparison()]
        while self.is_word("and"):
            self.pos += 1
            parts.append(self.comparison())
        return tuple(parts)

    def comparison(self) -> Comparison:
        left = self.operand()
        negate = self.is_word("not")
        if negate:
            self.pos += 1
        if self.is_word("in"):
            self.pos += 1
            if not isinstance(left, Ref):
                raise ValueError("'in' needs a lead.* or rep.* column on its left")
            return Comparison(left, "not in" if negate else "in", self.literal_list())
        if negate:
            raise ValueError("'not' must be followed by 'in'")
        kind, text = self.take()
        if kind != "op" or text not in COMPARATORS:
            raise ValueError(f"expected one of {' '.join(COMPARATORS)} or 'in', got {text!r}")
        right = self.operand()
        if isinstance(left, Literal) and isinstance(right, Literal):
            raise ValueError("a comparison needs a lead.* or rep.* column")
        return Comparison(left, text, right)

    def literal_list(self) -> tuple[Literal, ...]:
        _, text = self.take()
        if text not in _CLOSE:
            raise ValueError('\'in\' must be followed by a list such as ("a", "b")')
        items: list[Literal] = []
        while True:
            item = self.operand()
            if not isinstance(item, Literal):
                raise ValueError("a list after 'in' holds literals only")
            items.append(item)
            _, sep = self.take()
            if sep == _CLOSE[text]:
                return tuple(items)
            if sep != ",":
                raise ValueError(f"expected ',' or {_CLOSE[text]!r} in the list, got {sep!r}")

    def operand(self) -> Operand:
        kind, text = self.take()
        if kind == "ref":
            side, column = text.split(".", 1)
            return Ref(side, column.strip("`"))
        if kind == "str":
            return Literal(re.sub(r"\\(.)", r"\1", text[1:-1]))
        if kind == "num":
            return Literal(float(text))
        if kind == "word" and text.lower() in ("true", "false"):
            return Literal(text.lower() == "true")
        raise ValueError(f"expected lead.NAME, rep.NAME or a literal, got {text!r}")


def _parse_line(body: str, line: int, file: str) -> Rule:
    """Parse one non-empty rule line.

    Raises:
        ValueError: if the line does not follow the grammar.
    """
    parser = _Parser(_tokenize(body))
    first = parser.condition()
    antecedent: tuple[Comparison, ...] = ()
    token = parser.peek()
    if token == ("op", "->"):
        parser.pos += 1
        antecedent, first = first, parser.condition()
        token = parser.peek()
    if token is not None:
        raise ValueError(f"unexpected {token[1]!r} after the rule")
    return Rule(condition=first, antecedent=antecedent, text=body, line=line, file=file)


def _rule_mask(rule: Rule, leads: pd.DataFrame, reps: pd.DataFrame) -> BoolArray:
    """``(n_leads, n_reps)`` bool: where ``rule`` allows the pair."""
    shape = (len(leads), len(reps))
    known = np.ones((1, 1), dtype=bool)
    cond = np.ones((1, 1), dtype=bool)
    ante = np.ones((1, 1), dtype=bool)
    for part, target in ((rule.condition, "cond"), (rule.antecedent, "ante")):
        for comp in part:
            truth, ok = _compare(comp, rule, leads, reps)
            known = known & ok
            if target == "cond":
                cond = cond & truth
            else:
                ante = ante & truth
    allowed = ~known | ~ante | cond
    return np.broadcast_to(allowed, shape).copy()


def _column(ref: Ref, rule: Rule, leads: pd.DataFrame, reps: pd.DataFrame) -> pd.Series:
    """The referenced column, raising ``DataError`` if it does not exist."""
    frame = leads if ref.side == "lead" else reps
    if ref.column not in frame.columns:
        raise DataError(
            f"rule {rule.text!r} names {ref.side}.{ref.column}, which the {ref.side}s do not have",
            file=rule.file,
            row=rule.line,
            column=ref.column,
        )
    return frame[ref.column].reset_index(drop=True)


def _shaped(values: np.ndarray, side: str) -> np.ndarray:
    """A lead column as ``(n, 1)``, a rep column as ``(1, m)``."""
    return values[:, None] if side == "lead" else values[None, :]


def _is_numeric(series: pd.Series) -> bool:
    """Whether every non-missing value of ``series`` is a number (booleans are not)."""
    ok = _numeric_rows(series)
    return ok if isinstance(ok, bool) else bool(ok.all())


def _numeric_rows(series: pd.Series) -> np.ndarray | bool:
    """Per value of ``series``, whether it is a number or missing; one bool for a whole
    column of booleans (never numbers) or of numbers (always)."""
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return True
    coerced = pd.to_numeric(series, errors="coerce")
    return np.asarray((coerced.notna() | series.isna()).to_numpy(), dtype=bool)


def _as_text(series: pd.Series, fold: bool) -> np.ndarray:
    """Values as an object array of stripped strings, None where missing; booleans as
    ``true``/``false``."""
    if pd.api.types.is_bool_dtype(series):
        out = np.array(
            [None if pd.isna(v) else ("true" if v else "false") for v in series], dtype=object
        )
    else:
        values = series.to_numpy(dtype=object)
        if all(v is None or type(v) is str for v in values):  # parsed leads and reps
            out = np.array([None if v is None else v.strip() for v in values], dtype=object)
        else:  # numbers, NaN, NA...: as pandas writes them as strings
            # pandas' own string storage, as the plain path strips like Python (pyarrow's
            # would strip other characters)
            text = series.astype(pd.StringDtype("python")).str.strip().astype(object)
            out = np.array([None if pd.isna(v) else v for v in text], dtype=object)
    if fold:
        out = np.array([None if v is None else v.lower() for v in out], dtype=object)
    return out


def _compare(
    comp: Comparison, rule: Rule, leads: pd.DataFrame, reps: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Truth and "both sides known" of one comparison, broadcastable to (n_leads, n_reps)."""
    sides = [comp.left] + (list(comp.right) if isinstance(comp.right, tuple) else [comp.right])
    columns = {
        id(s): _column(s, rule, leads, reps) for s in sides if isinstance(s, Ref)
    }  # fmt: skip
    literals = [s.value for s in sides if isinstance(s, Literal)]
    # the shorter column first (the leads', mostly): a text column ends the check before
    # every rep's value is parsed as a number
    numeric = any(isinstance(v, float) for v in literals) or (
        not literals and all(_is_numeric(c) for c in sorted(columns.values(), key=len))
    )
    fold = any(isinstance(v, bool) for v in literals)
    if numeric:

        def convert(s: Operand) -> np.ndarray:
            if isinstance(s, Literal):
                num = pd.to_numeric(pd.Series([s.value]), errors="coerce")
                return np.asarray(num, dtype=np.float64)[0:1].reshape(1, 1)
            col = pd.to_numeric(columns[id(s)], errors="coerce").astype("float64")
            return _shaped(col.to_numpy(dtype=np.float64, na_value=np.nan), s.side)

        values = {id(s): convert(s) for s in sides}
        missing = {k: np.isnan(v) for k, v in values.items()}
    else:
        texts = {
            id(s): (
                np.array([str(s.value).lower() if fold else str(s.value)], dtype=object)
                if isinstance(s, Literal)
                else _as_text(columns[id(s)], fold)
            )
            for s in sides
        }
        codes_all, _ = pd.factorize(np.concatenate(list(texts.values())), sort=True)
        values, missing, start = {}, {}, 0
        for s in sides:
            size = len(texts[id(s)])
            code = codes_all[start : start + size].astype(np.int64)
            start += size
            code = code.reshape(1, 1) if isinstance(s, Literal) else _shaped(code, s.side)
            values[id(s)], missing[id(s)] = code, code < 0
    left = values[id(comp.left)]
    known = ~missing[id(comp.left)]
    if isinstance(comp.right, tuple):
        options = np.concatenate([values[id(lit)].ravel() for lit in comp.right])
        truth = np.isin(left, options)
        return (~truth if comp.op == "not in" else truth), known
    right = values[id(comp.right)]
    known = known & ~missing[id(comp.right)]
    return _OPS[comp.op](left, right), known


_OPS = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
