"""The readable report of `leadrank evaluate`, and the checks of its JSON (CONTRACT.md, 2).

:func:`render_report` turns the evaluate result (a dict: the contract keys plus optional
extras) into plain text for a terminal; :func:`validate_contract_json` lists contract keys
that are missing; :func:`to_jsonable` makes the dict safe for ``json.dump``.

Optional keys the report renders when present (and skips when absent or ``null``):

* ``ready`` (bool, str, or ``{"verdict", "reasons"}``) and ``warnings`` (list of str);
* in ``lead_score`` (or at the top level): ``n``, ``n_positive``, ``calibration`` (rows of
  :func:`~recommender.evaluation.metrics.calibration_table`), ``grades`` (rows of
  :func:`~recommender.evaluation.metrics.grade_table`), ``psi`` (a number, or a dict with
  ``value``), ``reason``;
* in ``rep_ranking``: ``n_reps``, ``components`` (``{name: ranking metrics}``), ``placebo``
  (``{"metric", "real", "real_ci", "placebo", "placebo_ci", "gain", "gain_ci",
  "significant", "description"}``), ``reason``;
* in ``win_probability``: ``log_loss_constant`` and ``brier_constant`` (the scores of the
  constant base rate, for reference), ``reason``;
* ``routing_policies`` (rows of :func:`~recommender.evaluation.metrics.policy_table`).

A ``null`` number shows as ``n/a``, followed by ``(reason)`` where the section has a
``<key>_reason`` or a ``reason`` string.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LEAKAGE_AUC = 0.9
"""Single-column AUC above which a column is reported as a likely leak."""

CONTRACT_KEYS: dict[str, Any] = {
    "split_time": None,
    "n_train_leads": None,
    "n_test_leads": None,
    "lead_score": {
        "auc": None,
        "average_precision": None,
        "log_loss": None,
        "brier": None,
        "gains": {"0.1": None, "0.2": None, "0.3": None},
        "gains_arrival_order": {"0.1": None, "0.2": None, "0.3": None},
    },
    "rep_ranking": {
        "n": None,
        "hr@1": None,
        "hr@3": None,
        "hr@5": None,
        "mrr": None,
        "baselines": {"random": None, "popularity": None, "recent_popularity": None},
    },
    "win_probability": {"n": None, "auc": None, "log_loss": None, "brier": None},
}
"""The keys the contract requires; a nested dict means the key must hold a dict with those keys."""


# ---------------------------------------------------------------- JSON helpers


def _path(parent: str, key: str) -> str:
    """Dotted path of ``key`` under ``parent``; keys holding a dot are bracketed."""
    part = f'["{key}"]' if "." in key else key
    if not parent:
        return part
    return f"{parent}{part}" if part.startswith("[") else f"{parent}.{part}"


def _missing(spec: Mapping[str, Any], got: Any, parent: str) -> list[str]:
    """Contract keys of ``spec`` absent from ``got``, as dotted paths."""
    out: list[str] = []
    for key, sub in spec.items():
        path = _path(parent, key)
        present = isinstance(got, Mapping) and key in got
        if not present:
            out.append(path)
            if isinstance(sub, Mapping):
                out.extend(_missing(sub, None, path))
        elif isinstance(sub, Mapping):
            out.extend(_missing(sub, got[key], path))
    return out


def validate_contract_json(result: Mapping[str, Any]) -> list[str]:
    """Return the contract keys missing from an evaluate result, as dotted paths.

    For example ``["lead_score.gains[\\"0.2\\"]", "rep_ranking.mrr"]``; an empty list means
    every key the contract requires is present. A section that is ``null`` instead of a
    dict of ``null`` values counts as missing all its keys (the contract wants the keys).
    Values are not checked: ``null`` is allowed wherever the data cannot tell.
    """
    return _missing(CONTRACT_KEYS, result, "")


def to_jsonable(obj: Any) -> Any:
    """Return ``obj`` as plain JSON types, recursively.

    numpy scalars and arrays become Python numbers and lists, NaN and infinities become
    ``None``, dates and times ISO strings, tuples and sets lists, mapping keys strings.
    Anything else unknown becomes its ``str``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [to_jsonable(v) for v in sorted(obj, key=str)]
    if isinstance(obj, np.datetime64):
        return None if np.isnat(obj) else str(obj)
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if hasattr(obj, "isoformat"):
        return str(obj.isoformat())
    return str(obj)


def leakage_warnings(aucs: Mapping[str, float | None], threshold: float = LEAKAGE_AUC) -> list[str]:
    """Warnings for the columns whose single-column AUC exceeds ``threshold``.

    ``aucs`` is :func:`~recommender.evaluation.metrics.single_column_auc`'s result. The
    warnings are ordered from the most separating column down.
    """
    hits = [(v, k) for k, v in aucs.items() if v is not None and v > threshold]
    return [
        f"column {name} separates the label almost perfectly (AUC {auc:.3f} alone): "
        "is it filled in after contact? If so, mark it leaky in schema.toml."
        for auc, name in sorted(hits, key=lambda h: (-h[0], h[1]))
    ]


# ---------------------------------------------------------------- formatting


def _num(value: Any, reason: str | None = None) -> str:
    """A number to 3 decimals (integers as integers); ``None`` as ``n/a (reason)``."""
    if value is None or (isinstance(value, (float, np.floating)) and not math.isfinite(value)):
        return f"n/a ({reason})" if reason else "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.3f}"
    return str(value)


def _reason(section: Mapping[str, Any], key: str) -> str | None:
    """The reason a value of ``section`` is null: ``<key>_reason``, else ``reason``."""
    for k in (f"{key}_reason", "reason"):
        r = section.get(k)
        if isinstance(r, str) and r:
            return r
    return None


def _interval(ci: Any) -> str:
    """``[low, high]`` to 3 decimals, or an empty string when there is no interval."""
    if isinstance(ci, np.ndarray):
        ci = ci.tolist()
    if (
        isinstance(ci, Sequence)
        and not isinstance(ci, str)
        and len(ci) == 2
        and all(isinstance(v, (int, float, np.number)) for v in ci)
    ):
        return f"[{_num(float(ci[0]))}, {_num(float(ci[1]))}]"
    return ""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ]
        return (indent + "  ".join(parts)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _na_note(rows: Sequence[Sequence[str]], reason: str | None) -> list[str]:
    """A note under a table that shows ``n/a`` cells, giving the reason once."""
    if reason and any(cell == "n/a" for row in rows for cell in row):
        return [f"  (n/a: {reason})"]
    return []


def _kv(pairs: Sequence[tuple[str, str]], indent: str = "  ") -> list[str]:
    """Aligned ``label  value`` lines."""
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{indent}{k.ljust(width)}  {v}" for k, v in pairs]


def _heading(title: str) -> list[str]:
    """A section title underlined."""
    return ["", title, "-" * len(title)]


def _extra(result: Mapping[str, Any], section: Mapping[str, Any], key: str) -> Any:
    """An optional key, looked up in ``section`` first and at the top level second."""
    value = section.get(key)
    return result.get(key) if value is None else value


def _dict(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


# ---------------------------------------------------------------- sections


def _psi_line(value: Any) -> list[str]:
    """The score-stability line with its usual reading."""
    v = value.get("value") if isinstance(value, Mapping) else value
    if not isinstance(v, (int, float, np.number)):
        return []
    f = float(v)
    reading = "stable" if f < 0.1 else ("a shift worth a look" if f <= 0.25 else "major shift")
    return [
        "",
        f"  Score stability, train -> test (PSI): {_num(f)}  ({reading}; "
        "< 0.1 stable, 0.1-0.25 shift, > 0.25 major)",
    ]


def _gains_lines(ls: Mapping[str, Any]) -> list[str]:
    """Cumulative gains: model order against arrival order and a random order."""
    model, arrival = _dict(ls.get("gains")), _dict(ls.get("gains_arrival_order"))
    keys = list(dict.fromkeys([*model.keys(), *arrival.keys()]))
    if not keys:
        return []
    rows = []
    for k in keys:
        try:
            share = float(k)
        except ValueError:
            continue
        rows.append([f"{share * 100:g} %", _num(model.get(k)), _num(arrival.get(k)), _num(share)])
    head = ["first leads", "model order", "arrival order", "random order"]
    out = ["", "  Share of the conversions reached in the first leads worked:", *_table(head, rows)]
    return out + _na_note(rows, _reason(ls, "gains"))


def _lead_section(result: Mapping[str, Any]) -> list[str]:
    """Lead score: discrimination, gains, calibration, grades, stability."""
    ls = _dict(result.get("lead_score"))
    out = _heading("Lead score: P(converted | lead)")
    pairs = []
    for key, label in (("n", "test leads with a known fate"), ("n_positive", "conversions")):
        if ls.get(key) is not None:
            pairs.append((label, _num(ls[key])))
    for key, label in (
        ("auc", "AUC"),
        ("average_precision", "average precision"),
        ("log_loss", "log loss"),
        ("brier", "Brier score"),
    ):
        pairs.append((label, _num(ls.get(key), _reason(ls, key))))
    out += _kv(pairs)
    out += _gains_lines(ls)
    calib = _extra(result, ls, "calibration")
    if isinstance(calib, Sequence) and calib:
        rows = [
            [
                _num(r.get("bin")),
                _num(r.get("n")),
                _num(r.get("mean_p")),
                _num(r.get("observed_rate")),
            ]
            for r in calib
            if isinstance(r, Mapping)
        ]
        out += ["", "  Calibration (quantile bins of the predicted probability):"]
        out += _table(["bin", "n", "predicted", "observed"], rows)
    grades = _extra(result, ls, "grades")
    if isinstance(grades, Sequence) and grades:
        rows = [
            [str(r.get("grade")), _num(r.get("n")), _num(r.get("converted")), _num(r.get("rate"))]
            for r in grades
            if isinstance(r, Mapping)
        ]
        out += ["", "  Conversion by grade:"]
        out += _table(["grade", "n", "converted", "rate"], rows)
    out += _psi_line(_extra(result, ls, "psi"))
    return out


def _readiness_section(result: Mapping[str, Any]) -> list[str]:
    """The verdict and the warnings, where present."""
    ready, warnings = result.get("ready"), result.get("warnings")
    out: list[str] = []
    if ready is not None:
        out += _heading("Readiness")
        if isinstance(ready, Mapping):
            verdict = ready.get("verdict", ready.get("ready"))
            out.append(f"  {_verdict(verdict)}")
            out += [f"  - {r}" for r in ready.get("reasons") or []]
        else:
            out.append(f"  {_verdict(ready)}")
    if isinstance(warnings, Sequence) and not isinstance(warnings, str) and warnings:
        out += _heading("Warnings") if ready is None else [""]
        out += [f"  ! {w}" for w in warnings]
    return out


def _verdict(value: Any) -> str:
    """A readiness value in words."""
    if isinstance(value, (bool, np.bool_)):
        return "READY to use on new leads" if value else "NOT READY: see the warnings"
    return str(value)


def _placebo_lines(placebo: Mapping[str, Any]) -> list[str]:
    """Real model against placebo (shuffled reps): the gain and whether it is significant."""
    metric = str(placebo.get("metric", "mrr"))
    out = ["", f"  Placebo check ({metric}, real rep history against a shuffled one):"]
    if isinstance(placebo.get("description"), str):
        out.append(f"    {placebo['description']}")
    pairs = []
    for key, label in (("real", "real"), ("placebo", "placebo"), ("gain", "gain")):
        if key in placebo:
            ci = _interval(placebo.get(f"{key}_ci"))
            pairs.append(
                (label, (_num(placebo.get(key), _reason(placebo, key)) + " " + ci).strip())
            )
    sig = placebo.get("significant")
    if sig is not None:
        pairs.append(("verdict", "significant" if sig else "not significant"))
    shown = {"metric", "description", "significant", "reason"}
    shown |= {k for base in ("real", "placebo", "gain") for k in (base, f"{base}_ci")}
    for key, value in placebo.items():
        if key not in shown and (value is None or isinstance(value, (int, float, str, np.number))):
            pairs.append((str(key), _num(value)))
    return out + _kv(pairs, indent="    ")


def _rep_section(result: Mapping[str, Any]) -> list[str]:
    """Rep ranking: hit rates and MRR of the model and of the baselines."""
    rr = _dict(result.get("rep_ranking"))
    out = _heading("Rep ranking: who should work the lead")
    n = rr.get("n")
    what = "converted test leads whose winning rep was seen in training"
    out.append(f"  n = {_num(n, _reason(rr, 'n'))} {what}")
    if rr.get("n_reps") is not None:
        out.append(f"  ranked among {_num(rr['n_reps'])} reps")
    hr_keys = sorted(
        (k for k in rr if k.startswith("hr@") and k[3:].isdigit()), key=lambda k: int(k[3:])
    )
    cols = [*hr_keys, "mrr"]
    rows = [["model", *(_num(rr.get(k)) for k in cols)]]
    for name, part in _dict(rr.get("components")).items():
        if isinstance(part, Mapping):
            rows.append([f"  {name.replace('_', ' ')}", *(_num(part.get(k)) for k in cols)])
    for name, base in _dict(rr.get("baselines")).items():
        rows.append([str(name), *(_num(_dict(base).get(k)) for k in cols)])
    out += ["", *_table(["", *(k.upper() for k in cols)], rows)]
    out += _na_note(rows, _reason(rr, "mrr"))
    if rr.get("components"):
        out.append(
            "  model = P(rep is given the lead, from past routing) x P(won | lead, rep);"
            " routing uses the second only"
        )
    placebo = rr.get("placebo")
    if isinstance(placebo, Mapping):
        out += _placebo_lines(placebo)
    return out


def _win_section(result: Mapping[str, Any]) -> list[str]:
    """Win probability of (lead, rep) pairs, with the constant-rate reference."""
    wp = _dict(result.get("win_probability"))
    out = _heading("Win probability: P(won | lead, rep)")
    pairs = [("n", _num(wp.get("n"), _reason(wp, "n")))]
    pairs.append(("AUC", _num(wp.get("auc"), _reason(wp, "auc"))))
    for key, label in (("log_loss", "log loss"), ("brier", "Brier score")):
        value = _num(wp.get(key), _reason(wp, key))
        ref = wp.get(f"{key}_constant")
        if ref is not None:
            value += f"  (constant base rate: {_num(ref)})"
        pairs.append((label, value))
    return out + _kv(pairs)


def _policy_section(result: Mapping[str, Any]) -> list[str]:
    """Conversion by routing policy, where the data records one."""
    rows_in = result.get("routing_policies")
    if not isinstance(rows_in, Sequence) or not rows_in:
        return []
    rows = [
        [
            str(r.get("policy")),
            _num(r.get("n")),
            _num(r.get("conversions")),
            _num(r.get("rate")),
            _num(r.get("ipw_rate")),
        ]
        for r in rows_in
        if isinstance(r, Mapping)
    ]
    out = _heading("Routing policies")
    return out + _table(["policy", "n", "conversions", "rate", "IPW rate"], rows)


def render_report(result: Mapping[str, Any]) -> str:
    """Render an evaluate result as a plain-text report (no colour, ends with a newline).

    Sections: header (split time, lead counts), readiness and warnings, lead score, rep
    ranking, win probability, routing policies. Optional parts (see the module docstring)
    are shown where present and skipped where absent or ``null``; a contract key that is
    ``null`` shows as ``n/a (reason)``. Never raises on a dict of the contract's shape,
    however many of its values are ``null``.
    """
    title = "leadrank evaluation"
    out = [title, "=" * len(title)]
    out += _kv(
        [
            ("split time", _num(result.get("split_time"))),
            ("training leads", _num(result.get("n_train_leads"))),
            ("test leads", _num(result.get("n_test_leads"))),
        ],
        indent="",
    )
    out += _readiness_section(result)
    out += _lead_section(result)
    out += _rep_section(result)
    out += _win_section(result)
    out += _policy_section(result)
    return "\n".join(out) + "\n"
