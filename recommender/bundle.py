"""A trained model bundle: everything needed to score, rank, route and find lookalikes.

A bundle is built by :func:`recommender.pipeline.train` and lives in a model folder::

    manifest.json      format version, created_at, data fingerprint, versions, metrics
    bundle.json        schema (roles, missing tokens), features, score scale, grade cuts
    reps.csv           the reps (capacity, active, attributes) it was trained with
    accounts.csv       the accounts it was trained with (joined onto leads by account_id)
    rules.txt          routing eligibility rules, if the dataset had them
    encoder.json       lead feature vocabulary; rep_encoder.json likewise for reps
    engagement/        decayed engagement features
    scorer/            the calibrated lead scorer
    affinity/          the per-rep affinity model (absent without rep history)
    lookalike/         the FAISS index of the ICP embedding

External string ids are used at this boundary; integer indices live inside.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender import routing, rules
from recommender.artifacts import MANIFEST, read_json, read_manifest, write_json
from recommender.columns import Columns, Files
from recommender.config import TrainConfig
from recommender.data.dataset import Dataset, FeatureColumns, FeatureSpec, frame_from_arrays
from recommender.data.load import load_accounts, load_reps, parse_lead_cells, parse_leads
from recommender.data.schema import Schema
from recommender.errors import DataError, ModelFolderError, UnknownIdError
from recommender.features import FeatureEncoder
from recommender.lookalike import LookalikeIndex
from recommender.models.affinity import RepAffinity
from recommender.models.base import Table
from recommender.models.engagement import OTHER, PREFIX, RECENCY, TOTAL, EngagementModel
from recommender.models.selection import LeadScorer
from recommender.scoring import clip_probability, grade, logit, reasons, score_0_100, to_points


class ModelBundle:
    """The fitted models of one training run, with the operations users ask for.

    Build one with :func:`recommender.pipeline.train`, or :meth:`load` a model folder.
    All methods take leads as a typed frame (see :meth:`read_leads_csv` and
    :meth:`leads_from_records`) and return frames keyed by the external ids.
    """

    def __init__(
        self,
        *,
        config: TrainConfig,
        manifest: dict[str, Any],
        schema: Schema,
        features: Sequence[FeatureSpec],
        rep_attributes: Sequence[FeatureSpec],
        reps: pd.DataFrame | None,
        accounts: pd.DataFrame | None,
        engagement: EngagementModel,
        scorer: LeadScorer,
        base_rate: float,
        grade_cuts: Sequence[float],
        encoder: FeatureEncoder,
        rep_encoder: FeatureEncoder | None,
        affinity: RepAffinity | None,
        model_reps: Sequence[str],
        lookalike: LookalikeIndex | None,
        lookalike_kind: str,
        rules_text: str | None,
        lookalike_seeds: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.manifest = manifest
        self.schema = schema
        self.features = tuple(features)
        self.rep_attributes = tuple(rep_attributes)
        self.reps = reps if reps is not None else _empty_reps()
        self.accounts = accounts
        self.engagement = engagement
        self.scorer = scorer
        self.base_rate = float(base_rate)
        self.grade_cuts = [float(c) for c in grade_cuts]
        self.encoder = encoder
        self.rep_encoder = rep_encoder
        self.affinity = affinity
        self.model_reps = [str(r) for r in model_reps]
        self.lookalike_index = lookalike
        self.lookalike_kind = lookalike_kind
        self.lookalike_seeds = lookalike_seeds or {"rep_wins": {}, "assigned": []}
        self.rules_text = rules_text
        self.rules = rules.parse_rules(rules_text) if rules_text else []
        self._rep_pos = {r: i for i, r in enumerate(self.model_reps)}
        # kept between calls: a feature-only dataset over ``accounts`` (see _feature_frame)
        # and the affinity columns of the last rep list (see _model_columns)
        self._inputs: Dataset | None = None
        self._columns_hit: tuple[tuple[str, ...], np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ inputs
    @property
    def version(self) -> str:
        """The model's version: its creation time and data fingerprint prefix."""
        return str(self.manifest.get("version", "unknown"))

    def _feature_frame(self, leads: pd.DataFrame) -> FeatureColumns:
        """The model inputs of ``leads`` (their columns joined with their accounts').

        The feature-only dataset behind it, with its indexed accounts, is built once per
        accounts table rather than per call.
        """
        inputs = self._inputs
        if inputs is None or inputs.accounts is not self.accounts:
            inputs = Dataset(leads=leads.iloc[:0], accounts=self.accounts, features=self.features)
            self._inputs = inputs
        return inputs.feature_columns(leads)

    def parse_leads(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Validate and type a leads table of strings against this model's schema.

        Raises:
            DataError: a missing ``lead_id``/``created_at``, duplicate id, bad date, or a
                bad value in a column ``schema.toml`` declared numeric.
        """
        return parse_leads(raw, self.schema.roles, self.schema.missing, infer=False)

    def read_leads_csv(self, path: Path | str) -> pd.DataFrame:
        """Read and type a leads CSV file (the contract's ``leads.csv`` columns).

        Raises:
            DataError: naming file, row and column.
        """
        from recommender.data.csvio import read_csv_file

        return self.parse_leads(read_csv_file(Path(path)))

    def leads_from_records(self, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """Type JSON lead objects exactly as the same cells of a CSV file would be.

        Values may be strings, numbers, booleans or null. Errors name ``row`` as the
        1-based position of the lead in ``records`` and the file ``leads``.

        Raises:
            DataError: a lead that is not an object, a nested value, or any
                :meth:`parse_leads` error.
        """
        rows: list[dict[str, str]] = []
        columns: dict[str, None] = {}
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                raise DataError("must be a JSON object", file="leads", row=i + 1)
            row = {}
            for key, value in rec.items():
                row[str(key)] = _cell(value, i + 1, str(key))
                columns[str(key)] = None
            rows.append(row)
        # one object array of cells per column, as a CSV file's table of strings holds them
        cells: dict[str, np.ndarray] = {}
        for name in columns:
            values = np.empty(len(rows), dtype=object)
            values[:] = [r.get(name, "") for r in rows]
            cells[name] = values
        return parse_lead_cells(
            cells,
            self.schema.roles,
            self.schema.missing,
            file="leads",
            rows=range(1, len(rows) + 1),
        )

    def _as_of(self, created: np.ndarray, as_of: pd.Timestamp | None) -> np.ndarray:
        """As-of times of leads created at ``created`` (datetime64[ns])."""
        if as_of is not None:
            return np.full(len(created), np.datetime64(pd.Timestamp(as_of).to_datetime64()))
        horizon = np.timedelta64(int(self.config.horizon_days * 86400), "s")
        now = np.datetime64(pd.Timestamp.now("UTC").tz_convert(None).to_datetime64())
        return np.minimum(created + horizon, now)

    def model_inputs(
        self,
        leads: pd.DataFrame,
        events: pd.DataFrame | None = None,
        as_of: pd.Timestamp | np.ndarray | None = None,
    ) -> pd.DataFrame:
        """Return the scorer's input frame: lead and account features plus engagement.

        Args:
            leads: typed leads.
            events: engagement events (``lead_id``, ``event``, ``at``, ``weight``) or None.
            as_of: one timestamp, one per lead, or None for ``created_at`` plus the horizon
                (never later than now). Only events strictly before it count.
        """
        return self._inputs_of(leads, events, as_of)[1].to_frame()

    def _inputs_of(
        self,
        leads: pd.DataFrame,
        events: pd.DataFrame | None,
        as_of: pd.Timestamp | np.ndarray | None,
        *,
        lead_ids: np.ndarray | None = None,
        created: np.ndarray | None = None,
    ) -> tuple[FeatureColumns, FeatureColumns]:
        """The feature columns of ``leads``, and the scorer's inputs (those plus engagement).

        ``lead_ids`` and ``created`` may pass the leads' ids and ``created_at``
        (datetime64[ns]) when the caller has already read them.
        """
        frame = self._feature_frame(leads)
        if isinstance(as_of, np.ndarray):
            when = as_of.astype("datetime64[ns]")
        else:
            if created is None:
                created = leads[Columns.CREATED].to_numpy(dtype="datetime64[ns]")
            when = self._as_of(created, as_of)
        if lead_ids is None:
            lead_ids = leads[Columns.LEAD].to_numpy(dtype=object)
        eng = self.engagement.transform_values(
            events if events is not None else _NO_EVENTS, [str(v) for v in lead_ids], when
        )
        by_column = eng.T.copy()  # one contiguous row per engagement feature
        names = self.engagement.feature_names_
        return frame, frame.with_columns({name: by_column[j] for j, name in enumerate(names)})

    def with_accounts(self, path: Path | str) -> ModelBundle:
        """Return a copy of this bundle that joins leads onto a newer ``accounts.csv``.

        Raises:
            DataError: the file breaks the contract.
        """
        import copy

        table, _, _, _ = load_accounts(Path(path).parent, self.schema, set(), Path(path))
        clone = copy.copy(self)
        clone.accounts = table
        return clone

    # ------------------------------------------------------------------ lead score
    def score(
        self,
        leads: pd.DataFrame,
        events: pd.DataFrame | None = None,
        as_of: pd.Timestamp | None = None,
        *,
        n_reasons: int = 3,
    ) -> pd.DataFrame:
        """Score leads: calibrated probability, 0-100 score, grade, fit and engagement.

        Returns a frame with ``lead_id``, ``probability`` (strictly inside (0, 1)),
        ``score`` (0-100 points: 50 = average odds, +20 points doubles the odds),
        ``grade`` (A-D), ``reasons`` (list of strings, biggest effect first), ``fit`` and
        ``engagement`` (0-100 points each, from the fit and the engagement factors alone).
        """
        return self._score_inputs(leads, self.model_inputs(leads, events, as_of), n_reasons)

    def _score_inputs(self, leads: pd.DataFrame, X: pd.DataFrame, n_reasons: int) -> pd.DataFrame:
        prob, contrib = self.scorer.predict_and_explain(X)
        p = clip_probability(prob)
        names = list(self.scorer.feature_names_)
        eng_names = set(self.engagement.feature_names_)
        is_eng = np.array([n in eng_names for n in names], dtype=bool)
        fit_pts = 50 + to_points(contrib[:, ~is_eng].sum(axis=1))
        eng_pts = 50 + to_points(contrib[:, is_eng].sum(axis=1)) if is_eng.any() else None
        values = X.reindex(columns=names).astype(object).to_numpy().tolist()
        _mark_unknown(values, names, self.scorer.known_levels())
        labels = [_label(n) for n in names]
        return pd.DataFrame(
            {
                Columns.LEAD: leads[Columns.LEAD].to_numpy(),
                "probability": p,
                "score": score_0_100(p, self.base_rate),
                "grade": grade(p, self.grade_cuts),
                "reasons": reasons(contrib, labels, values, top=n_reasons),
                "fit": np.clip(np.rint(fit_pts), 0, 100).astype(int),
                "engagement": (
                    np.clip(np.rint(eng_pts), 0, 100).astype(int)
                    if eng_pts is not None
                    else np.full(len(p), 50)
                ),
            }
        )

    # ------------------------------------------------------------------ per rep
    def lead_matrix(self, leads: pd.DataFrame, frame: Table | None = None) -> sp.csr_matrix:
        """Return the sparse indicator rows of ``leads`` (the affinity models' input).

        ``frame`` may pass the leads' feature frame when the caller already built it.
        """
        return self.encoder.transform(frame if frame is not None else self._feature_frame(leads))

    def rep_probabilities(
        self,
        leads: pd.DataFrame,
        rep_ids: Sequence[str] | None = None,
        events: pd.DataFrame | None = None,
        *,
        base_probability: np.ndarray | None = None,
        frame: Table | None = None,
    ) -> np.ndarray:
        """Return P(won | lead, rep) as an (n_leads, n_reps) matrix.

        Reps unknown to the affinity model (new reps, or no rep history at all) get the
        global lead probability.
        """
        ids = list(self.model_reps if rep_ids is None else rep_ids)
        if base_probability is None:
            base_probability = clip_probability(
                self.scorer.predict_proba(self._inputs_of(leads, events, None)[1])
            )
        base = logit(base_probability)
        out = np.repeat(clip_probability(base_probability)[:, None], len(ids), axis=1)
        if self.affinity is None or not ids:
            return out
        cols, model_cols = self._model_columns(ids)
        if len(cols):
            adj = self.affinity.predict_logit_adjustment(self.lead_matrix(leads, frame))
            z = base[:, None] + adj[:, model_cols]
            out[:, cols] = clip_probability(1.0 / (1.0 + np.exp(-z)))
        return out

    def _model_columns(self, rep_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``rep_ids`` of the reps the affinity model knows, and theirs in it.

        The last answer is kept: a service asks again and again for the same reps.
        """
        key = tuple(rep_ids)
        hit = self._columns_hit
        if hit is not None and hit[0] == key:
            return hit[1], hit[2]
        known = [(j, self._rep_pos[r]) for j, r in enumerate(key) if r in self._rep_pos]
        cols = np.array([j for j, _ in known], dtype=np.int64)
        model_cols = np.array([m for _, m in known], dtype=np.int64)
        self._columns_hit = (key, cols, model_cols)
        return cols, model_cols

    def rep_uncertainty(
        self, leads: pd.DataFrame, rep_ids: Sequence[str], frame: Table | None = None
    ) -> np.ndarray | None:
        """Return the std of each (lead, rep) logit adjustment, or None without a model."""
        if self.affinity is None:
            return None
        matrix = self.lead_matrix(leads, frame)
        unc = np.asarray(self.affinity.uncertainty(matrix), dtype=float)
        out = np.full((len(leads), len(rep_ids)), float(np.max(unc)) if unc.size else 1.0)
        for j, r in enumerate(rep_ids):
            if r in self._rep_pos:
                out[:, j] = unc[:, self._rep_pos[r]]
        return out

    def recommend(
        self,
        rep_id: str,
        leads: pd.DataFrame,
        k: int = 10,
        events: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Return ``rep_id``'s top ``k`` leads of ``leads``, best first.

        Columns: ``lead_id``, ``probability`` (P(won | lead, this rep)), ``reasons``.

        Raises:
            UnknownIdError: ``rep_id`` is not one of the model's reps.
        """
        known = set(self.reps[Columns.REP]) | set(self.model_reps)
        if rep_id not in known:
            raise UnknownIdError("rep", rep_id)
        if k < 1:
            raise ValueError("k must be at least 1")
        frame, X = self._inputs_of(leads, events, None)
        scored = self._score_inputs(leads, X.to_frame(), 3)
        prob = self.rep_probabilities(
            leads,
            [rep_id],
            events,
            base_probability=scored["probability"].to_numpy(),
            frame=frame,
        )[:, 0]
        order = np.argsort(-prob, kind="stable")[:k]
        return pd.DataFrame(
            {
                Columns.LEAD: leads[Columns.LEAD].to_numpy()[order],
                "probability": prob[order],
                "reasons": [scored["reasons"].iloc[i] for i in order],
            }
        ).reset_index(drop=True)

    # ------------------------------------------------------------------ routing
    def route(
        self,
        leads: pd.DataFrame,
        *,
        reps: pd.DataFrame | None = None,
        used: Mapping[tuple[str, str], int] | None = None,
        events: pd.DataFrame | None = None,
        seed: int = 0,
        explore: float = 0.0,
        holdout: float = 0.0,
        n_alternatives: int = 3,
    ) -> pd.DataFrame:
        """Assign each lead to one rep, within capacity, activity and eligibility rules.

        Args:
            leads: typed leads; a lead's day is the date of its ``created_at``.
            reps: reps to route to (default: the model's); ``capacity`` is the most new
                leads a rep takes a day (missing = unlimited), only ``active`` reps route.
            used: leads already assigned per ``(rep_id, "YYYY-MM-DD")``.
            seed: seed of the exploration and holdout draws.
            explore: share of leads routed by Thompson sampling over the affinity.
            holdout: share of leads routed uniformly at random among eligible reps.
            n_alternatives: how many runner-up reps to list per lead (active reps the
                rules let take it: where the lead goes if its rep fills up first).

        Returns:
            ``lead_id``, ``rep_id`` (None where no rep could take the lead), ``probability``,
            ``policy``, ``propensity``, ``reason``, ``day``, ``alternatives``.
        """
        columns = self._route_columns(
            leads,
            reps=reps,
            used=used,
            events=events,
            seed=seed,
            explore=explore,
            holdout=holdout,
            n_alternatives=n_alternatives,
        )
        if columns is None:
            return pd.DataFrame()
        n = len(columns["day"])
        alternatives = np.empty(n, dtype=object)  # one list per lead: never a 2-D array
        for i, runners in enumerate(columns["alternatives"]):
            alternatives[i] = runners
        reasons = np.empty(n, dtype=object)
        reasons[:] = columns["reason"]
        chosen_array = np.empty(n, dtype=object)
        chosen_array[:] = columns[Columns.REP]
        return frame_from_arrays(
            {
                Columns.LEAD: _inferred(columns[Columns.LEAD]),
                # object columns: pandas 3 would infer "str" and turn None into NaN
                Columns.REP: chosen_array,
                "probability": np.array(columns["probability"], dtype=np.float64),
                "policy": _inferred(columns["policy"]),
                "propensity": np.array(columns["propensity"], dtype=np.float64),
                "reason": reasons,
                "day": _inferred(columns["day"]),
                "alternatives": alternatives,
            },
            pd.RangeIndex(n),
        )

    def route_rows(
        self,
        leads: pd.DataFrame,
        *,
        reps: pd.DataFrame | None = None,
        used: Mapping[tuple[str, str], int] | None = None,
        events: pd.DataFrame | None = None,
        seed: int = 0,
        explore: float = 0.0,
        holdout: float = 0.0,
        n_alternatives: int = 3,
    ) -> list[dict[str, Any]]:
        """:meth:`route` as one dict per lead (its columns as keys), in input order.

        The same decisions as :meth:`route` with the same arguments, without building
        the frame (a service routing a few leads per call spent more on the frame and
        on reading it back than on the assignment). Values are plain Python: ``rep_id``
        and ``reason`` may be ``None``, ``probability`` and ``propensity`` are floats.
        """
        columns = self._route_columns(
            leads,
            reps=reps,
            used=used,
            events=events,
            seed=seed,
            explore=explore,
            holdout=holdout,
            n_alternatives=n_alternatives,
        )
        if columns is None:
            return []
        names = list(columns)
        return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]

    def _route_columns(
        self,
        leads: pd.DataFrame,
        *,
        reps: pd.DataFrame | None,
        used: Mapping[tuple[str, str], int] | None,
        events: pd.DataFrame | None,
        seed: int,
        explore: float,
        holdout: float,
        n_alternatives: int,
    ) -> dict[str, list[Any]] | None:
        """The columns of :meth:`route` as lists (``None`` for no leads)."""
        table = self.reps if reps is None else reps
        rep_ids = [str(r) for r in table[Columns.REP].to_numpy(dtype=object)]
        n = len(leads)
        lead_ids = leads[Columns.LEAD].to_numpy(dtype=object)
        created = leads[Columns.CREATED].to_numpy(dtype="datetime64[ns]")
        frame, X = self._inputs_of(leads, events, None, lead_ids=lead_ids, created=created)
        scored_p = clip_probability(self.scorer.predict_proba(X))
        prob = self.rep_probabilities(
            leads, rep_ids, events, base_probability=scored_p, frame=frame
        )
        day_keys = routing.days_since_epoch(created)
        days = [routing.default_day_label(int(d)) for d in day_keys]
        capacity = _capacities(table[Columns.CAPACITY])
        active = _actives(table[Columns.ACTIVE])
        eligible = why = None
        if self.rules and rep_ids:
            eligible, why = rules.explain(
                self.rules,
                _rule_frame(leads, frame, rules.lead_columns(self.rules)),
                table.reset_index(drop=True),
                among=active,
            )
        used_map: dict[tuple[int, int], int] = {}
        if used:
            rep_pos = {r: j for j, r in enumerate(rep_ids)}
            label_key = {lab: int(k) for lab, k in zip(days, day_keys)}
            for (rep, day), count in used.items():
                if rep in rep_pos and day in label_key:
                    key = (label_key[day], rep_pos[rep])
                    used_map[key] = used_map.get(key, 0) + int(count)
        uncertainty = self.rep_uncertainty(leads, rep_ids, frame) if explore > 0 else None
        if rep_ids:
            result = routing.route(
                prob,
                day=day_keys,
                capacity=np.where(capacity < 0, -1, capacity).astype(np.int64),
                active=active,
                eligible=eligible,
                used=used_map,
                uncertainty=uncertainty,
                explore=explore,
                holdout=holdout,
                seed=seed,
                eligible_why=why,
            )
            chosen = result.rep_index
            policy, propensity, reason = result.policy, result.propensity, result.reason
        else:
            chosen = np.full(n, -1)
            policy = np.full(n, "none")
            propensity = np.zeros(n)
            reason = ["no reps in the model or the reps file"] * n
        if n == 0:
            return None
        if rep_ids and n <= _FEW_LEADS and eligible is None:  # only the top of each row
            order: np.ndarray | None = _top_order(prob, active, n_alternatives)
        else:
            order = np.argsort(-prob, axis=1, kind="stable") if rep_ids else None
        chosen_ids: list[str | None] = []
        probability: list[float] = []
        alternatives: list[list[dict[str, Any]]] = []
        for i in range(n):
            j = int(chosen[i])
            chosen_ids.append(rep_ids[j] if j >= 0 else None)
            probability.append(float(prob[i, j]) if j >= 0 else float(scored_p[i]))
            # a runner-up is where the lead goes if its rep is full: active and eligible
            open_reps = active if eligible is None else active & eligible[i]
            runners = (
                _runners_up(order[i], j, open_reps, n_alternatives) if order is not None else []
            )
            alternatives.append(
                [{Columns.REP: rep_ids[a], "probability": float(prob[i, a])} for a in runners]
            )
        return {
            Columns.LEAD: lead_ids.tolist(),
            Columns.REP: chosen_ids,
            "probability": probability,
            "policy": [str(v) for v in policy],
            "propensity": [float(v) for v in propensity],
            "reason": [None if v is None or v != v else v for v in reason],
            "day": days,
            "alternatives": alternatives,
        }

    def rule_batch_key(self, leads: pd.DataFrame) -> tuple[bool | None, ...]:
        """What the eligibility rules read off ``leads`` as a whole (:func:`rules.batch_key`).

        Groups of leads with equal keys routed together get the eligibility each group
        would get routed alone; ``()`` for a model without rules.
        """
        return self.rule_batch_keys(leads, [np.arange(len(leads))])[0]

    def rule_batch_keys(
        self, leads: pd.DataFrame, parts: Sequence[np.ndarray]
    ) -> list[tuple[bool | None, ...]]:
        """:meth:`rule_batch_key` of each part of ``leads`` (row positions), in one pass.

        For parts that would come with the same columns parsed alone (leads sent with the
        same fields): typed lead columns are parsed value by value, so each part's key is
        the one its leads would get on their own (:func:`rules.batch_keys`), without
        building a frame per part.
        """
        if not self.rules:
            return [() for _ in parts]
        wanted = rules.lead_columns(self.rules)
        # the model inputs are built only for a column the leads do not carry themselves
        inputs = None if set(wanted) <= set(leads.columns) else self._feature_frame(leads)
        return rules.batch_keys(self.rules, _rule_frame(leads, inputs, wanted), parts)

    # ------------------------------------------------------------------ lookalikes
    def lookalike_warning(self) -> str | None:
        """Why lookalike answers carry no information, or ``None`` when they do.

        Every account (or lead) sits at the same point of the ICP space when the lead
        score found nothing to tell leads apart (it predicts the base rate): then every
        similarity is 0 and the order is arbitrary.
        """
        index = self.lookalike_index
        if index is None or len(index.embeddings_) == 0:
            return None
        if float(np.ptp(index.embeddings_, axis=0).max()) > 1e-6:
            return None
        return (
            "every account (or lead) sits at the same point of the ICP space: the lead "
            "score found nothing that tells leads apart in the training data, so every "
            "similarity is 0 and the order is arbitrary"
        )

    def lookalike(
        self,
        seeds: Sequence[str] = (),
        k: int = 100,
        *,
        exclude_customers: bool = False,
        exclude_assigned: bool = False,
        where: Mapping[str, str] | None = None,
        rep: str | None = None,
    ) -> pd.DataFrame:
        """Return the ``k`` accounts (or leads) nearest the seeds, seeds excluded.

        Args:
            seeds: account ids (lead ids where the data has no accounts).
            k: how many results (fewer when fewer are eligible).
            exclude_customers: leave out accounts whose ``is_customer`` is true.
            exclude_assigned: leave out accounts (or leads) already worked in the history.
            where: keep only accounts whose column equals the value (``{"region": "EMEA"}``).
            rep: add the accounts (or leads) this rep won in the history to the seeds.

        Returns ``id`` and ``similarity``, best first: in the default whitened ICP space, how
        many standard deviations a row lies from the catalogue's mean along the seeds'
        direction (0 = an average row; unbounded), see :class:`LookalikeIndex`.

        Raises:
            UnknownIdError: a seed the model has not indexed, or an unknown ``rep``.
            DataError: no seed at all, or a ``where`` column the accounts do not have.
            ModelFolderError: the model has no lookalike index.
        """
        index = self.lookalike_index
        if index is None:
            raise ModelFolderError("this model has no lookalike index")
        chosen = list(seeds)
        if rep is not None:
            if (
                rep not in set(self.reps[Columns.REP])
                and rep not in self.lookalike_seeds["rep_wins"]
            ):
                raise UnknownIdError("rep", rep)
            known = set(index.ids_)
            chosen += [i for i in self.lookalike_seeds["rep_wins"].get(rep, []) if i in known]
        if not chosen:
            raise DataError(
                "no seeds: give seed ids"
                + (f", or a rep with won deals ({rep} has none)" if rep else "")
            )
        exclude = np.zeros(len(index.ids_), dtype=bool)
        ids = pd.Index(index.ids_)
        if exclude_assigned:
            exclude |= ids.isin(self.lookalike_seeds["assigned"])
        if (exclude_customers or where) and self.lookalike_kind == "account":
            table = self.accounts.set_index(Columns.ACCOUNT) if self.accounts is not None else None
            if table is not None and exclude_customers and Columns.IS_CUSTOMER in table.columns:
                cust = table[Columns.IS_CUSTOMER].reindex(ids).fillna(False).astype(bool)
                exclude |= cust.to_numpy()
            for column, value in (where or {}).items():
                if table is None or column not in table.columns:
                    raise DataError("no such account column to filter on", column=column)
                col = table[column].reindex(ids)
                exclude |= ~col.astype(str).eq(str(value)).to_numpy() | col.isna().to_numpy()
        elif where:
            raise DataError("filters need an accounts table; this model indexes leads")
        found = index.query(
            list(dict.fromkeys(chosen)), k, exclude=exclude if exclude.any() else None
        )
        return pd.DataFrame(found, columns=["id", "similarity"])

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> None:
        """Write every component into ``folder`` (an existing, empty folder).

        Use :func:`recommender.pipeline.save_bundle` to write atomically.
        """
        write_json(
            folder / "bundle.json",
            {
                "config": self.config.to_dict(),
                "schema": self.schema.to_dict(),
                "features": [vars(f) for f in self.features],
                "rep_attributes": [vars(f) for f in self.rep_attributes],
                "base_rate": self.base_rate,
                "grade_cuts": self.grade_cuts,
                "model_reps": self.model_reps,
                "lookalike_kind": self.lookalike_kind,
            },
        )
        self.reps.to_csv(folder / Files.REPS, index=False)
        if self.accounts is not None:
            self.accounts.to_csv(folder / Files.ACCOUNTS, index=False)
        if self.rules_text:
            (folder / "rules.txt").write_text(self.rules_text)
        write_json(folder / "lookalike_seeds.json", self.lookalike_seeds)
        write_json(folder / "encoder.json", self.encoder.to_dict())
        if self.rep_encoder is not None:
            write_json(folder / "rep_encoder.json", self.rep_encoder.to_dict())
        for name, part in (
            ("engagement", self.engagement),
            ("scorer", self.scorer),
            ("affinity", self.affinity),
            ("lookalike", self.lookalike_index),
        ):
            if part is not None:
                (folder / name).mkdir()
                part.save(folder / name)
        write_json(folder / MANIFEST, self.manifest)

    @classmethod
    def load(cls, folder: Path | str) -> ModelBundle:
        """Load a model folder written by :func:`recommender.pipeline.train`.

        Raises:
            ModelFolderError: the folder is missing, incomplete, or of another format.
        """
        root = Path(folder)
        manifest = read_manifest(root)
        meta = read_json(root / "bundle.json")
        try:
            schema = Schema.from_dict(meta["schema"])
            features = [FeatureSpec(**f) for f in meta["features"]]
            rep_specs = [FeatureSpec(**f) for f in meta["rep_attributes"]]
            reps, _, _ = load_reps(root, schema)
            accounts, _, _, _ = load_accounts(root, schema, set())
            rep_enc = root / "rep_encoder.json"
            bundle = cls(
                config=TrainConfig.from_dict(meta["config"]),
                manifest=manifest,
                schema=schema,
                features=features,
                rep_attributes=rep_specs,
                reps=reps,
                accounts=accounts,
                engagement=EngagementModel.load(root / "engagement"),
                scorer=LeadScorer.load(root / "scorer"),
                base_rate=meta["base_rate"],
                grade_cuts=meta["grade_cuts"],
                encoder=FeatureEncoder.from_dict(read_json(root / "encoder.json")),
                rep_encoder=FeatureEncoder.from_dict(read_json(rep_enc))
                if rep_enc.is_file()
                else None,
                affinity=RepAffinity.load(root / "affinity")
                if (root / "affinity").is_dir()
                else None,
                model_reps=meta["model_reps"],
                lookalike=LookalikeIndex.load(root / "lookalike")
                if (root / "lookalike").is_dir()
                else None,
                lookalike_kind=meta["lookalike_kind"],
                lookalike_seeds=read_json(root / "lookalike_seeds.json")
                if (root / "lookalike_seeds.json").is_file()
                else None,
                rules_text=(root / "rules.txt").read_text()
                if (root / "rules.txt").is_file()
                else None,
            )
        except ModelFolderError:
            raise
        except (KeyError, TypeError, ValueError, OSError, DataError) as exc:
            raise ModelFolderError(
                f"model folder '{root}' is incomplete or damaged: {exc}"
            ) from exc
        return bundle


def _rule_frame(
    leads: pd.DataFrame, frame: FeatureColumns | None, wanted: Sequence[str]
) -> pd.DataFrame:
    """The lead columns the rules read (``wanted``): the leads' own, else the model
    input of that name (an account's column; ``frame``, which may be ``None`` when the
    leads carry every wanted column); one that neither has is left out, so the rules
    name it as missing. Only these columns: copying every column of the leads and of
    the model inputs into one frame cost a routed lead more than its rules did."""
    columns: dict[str, Any] = {}
    for name in wanted:
        if name in leads.columns:
            values = leads[name]
            if isinstance(values, pd.DataFrame):  # a name the frame holds twice: the first
                values = values.iloc[:, 0]
            columns[name] = (
                values.to_numpy() if isinstance(values.dtype, np.dtype) else values.array
            )
        elif frame is not None and name in frame.columns:
            columns[name] = frame[name]
    return frame_from_arrays(columns, pd.RangeIndex(len(leads)))


def _empty_reps() -> pd.DataFrame:
    return pd.DataFrame(
        {
            Columns.REP: pd.Series([], dtype=object),
            Columns.CAPACITY: pd.array([], dtype="Int64"),
            Columns.ACTIVE: pd.Series([], dtype=bool),
        }
    )


#: Up to this many leads, the runners-up come from a partial sort of each row's best reps.
_FEW_LEADS = 64


def _top_order(prob: np.ndarray, active: np.ndarray, k: int) -> np.ndarray:
    """The first columns of ``np.argsort(-prob, axis=1, kind="stable")``: enough of them
    that :func:`_runners_up` finds the same ``k`` active reps (the chosen rep excepted).

    Only the ``k + 1`` best active reps of a row and the inactive reps tied with or
    above them are needed; each row is partitioned, then only that head is sorted (all
    rows in one step unless a row ties at its cut, where that row's head is longer).
    """
    n_reps = prob.shape[1]
    need = k + 1 + int(n_reps - np.count_nonzero(active))  # a few more than enough
    if need >= n_reps or np.isnan(prob).any():
        return np.argsort(-prob, axis=1, kind="stable")
    neg = -prob
    kth = np.partition(neg, need - 1, axis=1)[:, need - 1 : need]
    head = neg <= kth  # ties with the need-th value included
    if np.all(np.count_nonzero(head, axis=1) == need):  # no ties: one step for all rows
        cols = np.nonzero(head)[1].reshape(prob.shape[0], need)  # ascending in each row
        rank = np.argsort(np.take_along_axis(neg, cols, axis=1), axis=1, kind="stable")
        return np.take_along_axis(cols, rank, axis=1)
    out = np.empty((prob.shape[0], need), dtype=np.int64)
    for i, row in enumerate(neg):
        cut = np.partition(row, need - 1)[need - 1]
        top = np.flatnonzero(row <= cut)  # ties with the need-th value included
        out[i] = top[np.argsort(row[top], kind="stable")][:need]
    return out


def _capacities(column: pd.Series) -> np.ndarray:
    """Reps' daily capacities as float64, -1 where missing (unlimited)."""
    if isinstance(column.dtype, pd.Int64Dtype):  # typed reps: no Float64 copy needed
        return np.asarray(column.to_numpy(dtype=np.float64, na_value=-1.0), dtype=np.float64)
    return np.asarray(column.astype("Float64").fillna(-1).to_numpy(dtype=float), dtype=np.float64)


def _actives(column: pd.Series) -> np.ndarray:
    """Reps' ``active`` flags as a bool array."""
    if column.dtype == bool:
        return np.array(column.to_numpy(), dtype=bool)
    return np.asarray(column.astype(bool).to_numpy(), dtype=bool)


def _inferred(values: list[Any]) -> Any:
    """``values`` as the column ``pd.DataFrame({...: values})`` would make of them
    (``str`` where every value is a string, as pandas 3 infers)."""
    if values and all(type(v) is str for v in values):
        return pd.array(values, dtype="str")
    return pd.Series(values).array


def _runners_up(order: np.ndarray, chosen: int, active: np.ndarray, k: int) -> list[int]:
    """The first ``k`` reps of ``order`` (best first) open to the lead (``active``: active
    and, with rules, eligible) other than ``chosen``."""
    out: list[int] = []
    for a in order:
        if len(out) >= k:
            break
        if a != chosen and active[a]:
            out.append(int(a))
    return out


def _cell(value: Any, row: int, column: str) -> str:
    """Render a JSON value as the CSV cell it stands for."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DataError("must be a finite number", file="leads", row=row, column=column)
        return repr(value)
    if isinstance(value, str):
        return value.strip()
    raise DataError(
        f"must be a string or a number, not {json.dumps(value)[:40]}",
        file="leads",
        row=row,
        column=column,
    )


UNKNOWN_VALUE = " (rare or new value)"
"""Appended in reasons to a category the scorer has no level of its own for."""


def _mark_unknown(
    values: list[list[Any]], names: Sequence[str], known: Mapping[str, frozenset[str]]
) -> None:
    """Mark, in place, each category the scorer scores as "other" (rare in training, or
    never seen): its reason then does not read as if that value had been learned."""
    columns = [(j, known[n]) for j, n in enumerate(names) if n in known]
    for row in values:
        for j, levels in columns:
            value = row[j]
            if isinstance(value, str) and value not in levels:
                row[j] = value + UNKNOWN_VALUE


def _label(name: str) -> str:
    """Readable label of a scorer input column."""
    if name == TOTAL:
        return "Engagement (decayed)"
    if name == RECENCY:
        return "Days since last activity"
    if name == OTHER:
        return "Recent other activity"
    if name.startswith(PREFIX):
        return f"Recent {name[len(PREFIX) :].replace('_', ' ')} activity"
    return name


def empty_events() -> pd.DataFrame:
    """Return an events table with no rows (for leads scored without engagement data)."""
    return pd.DataFrame(
        {
            Columns.LEAD: pd.Series([], dtype=object),
            Columns.EVENT: pd.Series([], dtype=object),
            Columns.AT: pd.Series([], dtype="datetime64[ns]"),
            Columns.WEIGHT: pd.Series([], dtype="float64"),
        }
    )


_NO_EVENTS = empty_events()
"""The events table of leads without engagement data (read, never changed)."""


__all__ = ["ModelBundle"]
