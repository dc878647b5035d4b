"""Engagement features: decay, the as-of cut-off, leads without events, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.errors import DataError, NotFittedError
from recommender.models import EngagementModel

T0 = pd.Timestamp("2024-03-01")


def events_frame(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    """Events from (lead_id, event, at, weight) tuples."""
    frame = pd.DataFrame(rows, columns=["lead_id", "event", "at", "weight"])
    frame["at"] = pd.to_datetime(frame["at"])
    return frame


EVENTS = events_frame(
    [
        ("a", "visit", "2024-02-16", 1.0),  # 14 days before T0
        ("a", "visit", "2024-03-01", 1.0),  # exactly at T0: not before it
        ("a", "download", "2024-02-29", 2.0),  # 1 day before T0
        ("b", "visit", "2024-01-01", 1.0),
        ("b", "webinar", "2024-02-25", 1.0),  # rare type: "other"
        ("c", "visit", "2024-04-01", 1.0),  # after T0
    ]
)


def fitted(half_life: float = 14.0) -> EngagementModel:
    return EngagementModel(half_life_days=half_life, min_event_count=1, max_event_types=2).fit(
        EVENTS
    )


def test_event_types_are_the_most_frequent() -> None:
    model = fitted()
    assert model.event_types_ == ["visit", "download"]
    assert model.feature_names_ == [
        "eng_visit",
        "eng_download",
        "eng_other_events",
        "engagement",
        "days_since_last_event",
    ]


def test_one_half_life_counts_half_and_weights_multiply() -> None:
    out = fitted().transform(EVENTS, ["a"], T0)
    assert out.loc[0, "eng_visit"] == pytest.approx(0.5)
    assert out.loc[0, "eng_download"] == pytest.approx(2.0 * 2 ** (-1 / 14))
    assert out.loc[0, "engagement"] == pytest.approx(0.5 + 2.0 * 2 ** (-1 / 14))
    assert out.loc[0, "days_since_last_event"] == pytest.approx(1.0)


def test_events_at_or_after_as_of_are_ignored() -> None:
    model = fitted()
    before = model.transform(EVENTS, ["a", "b", "c"], T0)
    later = events_frame(
        [
            ("a", "visit", "2024-03-02", 5.0),
            ("b", "download", "2024-03-01", 1.0),
            ("c", "visit", "2024-03-10", 1.0),
        ]
    )
    after = model.transform(pd.concat([EVENTS, later]), ["a", "b", "c"], T0)
    pd.testing.assert_frame_equal(before, after)
    assert before.loc[2, "engagement"] == 0.0


def test_per_lead_as_of_times() -> None:
    model = fitted()
    as_of = np.array(["2024-02-17", "2024-02-26", "2024-04-02"], dtype="datetime64[ns]")
    out = model.transform(EVENTS, ["a", "b", "c"], as_of)
    assert out.loc[0, "eng_visit"] == pytest.approx(2 ** (-1 / 14))
    assert out.loc[0, "eng_download"] == 0.0
    assert out.loc[1, "eng_other_events"] == pytest.approx(2 ** (-1 / 14))
    assert out.loc[2, "days_since_last_event"] == pytest.approx(1.0)


def test_leads_without_events_get_zeros_and_no_recency() -> None:
    out = fitted().transform(EVENTS, ["z", "a"], T0)
    assert (out.loc[0, ["eng_visit", "eng_download", "eng_other_events", "engagement"]] == 0).all()
    assert np.isnan(out["days_since_last_event"].to_numpy()[0])
    assert out["engagement"].to_numpy()[1] > 0


def test_shorter_half_life_forgets_faster() -> None:
    slow = fitted(30.0).transform(EVENTS, ["b"], T0)["engagement"].to_numpy()[0]
    fast = fitted(3.0).transform(EVENTS, ["b"], T0)["engagement"].to_numpy()[0]
    assert fast < slow


def test_missing_weight_counts_one() -> None:
    events = EVENTS.drop(columns="weight")
    out = fitted().transform(events, ["a"], T0)
    assert out.loc[0, "eng_download"] == pytest.approx(2 ** (-1 / 14))


def test_bad_input_is_refused() -> None:
    with pytest.raises(NotFittedError):
        EngagementModel().transform(EVENTS, ["a"], T0)
    model = fitted()
    with pytest.raises(DataError):
        model.transform(EVENTS, ["a", "a"], T0)
    with pytest.raises(DataError):
        model.transform(EVENTS, ["a", "b"], np.array(["2024-01-01"], dtype="datetime64[ns]"))
    with pytest.raises(DataError, match="at"):
        model.transform(EVENTS.drop(columns="at"), ["a"], T0)


def test_half_life_is_learned_from_labels() -> None:
    rng = np.random.default_rng(0)
    n = 400
    ids = [f"l{i}" for i in range(n)]
    y = rng.random(n) < 0.5
    # Converters had a burst of activity in the last two days; everyone had old activity.
    recent = [
        (ids[i], "visit", T0 - pd.Timedelta(days=rng.uniform(0, 2)), 1.0) for i in range(n) if y[i]
    ]
    old = [
        (i, "visit", T0 - pd.Timedelta(days=rng.uniform(30, 200)), 1.0)
        for i in ids
        for _ in range(3)
    ]
    events = pd.DataFrame(recent + old, columns=["lead_id", "event", "at", "weight"])
    model = EngagementModel(half_life_days=None).fit(events, ids, T0, y.astype(int))
    assert model.half_life_days_ <= 3.0
    assert set(model.half_life_auc_) == {"1", "3", "7", "14", "30", "90"}


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = fitted(7.0)
    model.save(tmp_path)
    loaded = EngagementModel.load(tmp_path)
    pd.testing.assert_frame_equal(
        loaded.transform(EVENTS, ["a", "b"], T0), model.transform(EVENTS, ["a", "b"], T0)
    )


def test_many_events_vectorised() -> None:
    rng = np.random.default_rng(1)
    n_events, n_leads = 200_000, 20_000
    events = pd.DataFrame(
        {
            "lead_id": rng.integers(0, n_leads, n_events).astype(str),
            "event": rng.choice(["visit", "open", "click"], n_events),
            "at": T0 - pd.to_timedelta(rng.uniform(0, 100, n_events), unit="D"),
            "weight": 1.0,
        }
    )
    model = EngagementModel().fit(events)
    out = model.transform(events, [str(i) for i in range(n_leads)], T0)
    counts = events.groupby("lead_id").size()
    assert out.shape == (n_leads, 6)
    assert (out["engagement"] > 0).sum() == counts.size
    expected = float(np.exp2(-((T0 - events["at"]).dt.total_seconds() / 86400) / 14).sum())
    assert out["engagement"].sum() == pytest.approx(expected)
