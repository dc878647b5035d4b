"""Column and file names of the dataset contract (../shared/CONTRACT.md, section 1).

Every module names contract columns through these constants, never through literals.
"""

from __future__ import annotations


class Files:
    """File names inside a dataset folder."""

    LEADS = "leads.csv"
    REPS = "reps.csv"
    OUTCOMES = "outcomes.csv"
    EVENTS = "events.csv"
    ACCOUNTS = "accounts.csv"
    SCHEMA = "schema.toml"


class Columns:
    """Column names fixed by the contract."""

    LEAD = "lead_id"
    CREATED = "created_at"
    ACCOUNT = "account_id"
    SOURCE = "source"

    REP = "rep_id"
    CAPACITY = "capacity"
    ACTIVE = "active"

    OUTCOME = "outcome"
    ASSIGNED = "assigned_at"
    CLOSED = "closed_at"
    VALUE = "value"
    #: optional outcome columns (an extension): how the lead was routed, so evaluate can
    #: report conversion by policy (model, explore, holdout) with inverse propensity weights
    POLICY = "policy"
    PROPENSITY = "propensity"

    EVENT = "event"
    AT = "at"
    WEIGHT = "weight"

    IS_CUSTOMER = "is_customer"


class Outcome:
    """Values of the ``outcome`` column."""

    WON = "won"
    LOST = "lost"
    OPEN = "open"
    ALL = (WON, LOST, OPEN)


class Role:
    """Column roles that ``schema.toml`` may assign."""

    CATEGORICAL = "categorical"
    NUMERIC = "numeric"
    TEXT = "text"
    IGNORE = "ignore"
    LEAKY = "leaky"
    ALL = (CATEGORICAL, NUMERIC, TEXT, IGNORE, LEAKY)
