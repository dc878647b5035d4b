"""SQLAlchemy 2 table models of the store (one class per table).

Times are naive UTC ``DateTime`` columns; a lead's ``day`` is the ``YYYY-MM-DD`` of its
``created_at``, the unit of a rep's daily capacity. Changing a table needs a new Alembic
revision under ``service/migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LENGTH = 200


def utcnow() -> datetime:
    """The current time as a naive UTC datetime (what every DateTime column holds)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class ApiKey(Base):
    """An API key: only the sha256 of the secret is kept, with its role."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    role: Mapped[str] = mapped_column(String(ID_LENGTH + 8), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class Rep(Base):
    """A rep as the service routes to it: capacity (leads a day, NULL = no cap), active."""

    __tablename__ = "reps"

    rep_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class Lead(Base):
    """A lead the service routed: its JSON record as received, and its day."""

    __tablename__ = "leads"

    lead_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), nullable=False)
    record: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class Assignment(Base):
    """The routing decision for a lead (one per lead), with its policy and propensity."""

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("leads.lead_id"), unique=True, nullable=False
    )
    rep_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("reps.rep_id"), nullable=True, index=True
    )
    day: Mapped[str] = mapped_column(String(10), nullable=False)
    probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    policy: Mapped[str] = mapped_column(String(16), nullable=False)
    propensity: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    alternatives: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    model_version: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    assigned_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class RepDayLoad(Base):
    """How many leads a rep was given on one day: the counter capacity is claimed from."""

    __tablename__ = "rep_day_load"

    rep_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("reps.rep_id"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True, index=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class OutcomeRow(Base):
    """The outcome of a (lead, rep) pair; a retry overwrites, never adds."""

    __tablename__ = "outcomes"
    __table_args__ = (UniqueConstraint("lead_id", "rep_id", name="uq_outcomes_lead_rep"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("leads.lead_id"), nullable=False
    )
    rep_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("reps.rep_id"), nullable=False, index=True
    )
    outcome: Mapped[str] = mapped_column(String(8), nullable=False)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class EventRow(Base):
    """An engagement event of a lead (need not be routed yet)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False, index=True)
    event: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
