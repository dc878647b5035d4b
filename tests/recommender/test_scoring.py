"""Reason values read as the data writes them."""

from __future__ import annotations

import numpy as np

from recommender.scoring import format_value


def test_reason_values_have_no_thousands_separator() -> None:
    assert format_value(1428.0) == "1428"
    assert format_value(np.float64(2.5)) == "2.50"
    assert format_value(float("nan")) == "missing"
    assert format_value(None) == "missing"
    assert format_value("Google") == "Google"
