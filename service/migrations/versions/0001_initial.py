"""Initial store: api keys, reps, leads, assignments, rep day load, outcomes, events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 200


def upgrade() -> None:
    """Create every table of the first schema."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("role", sa.String(ID + 8), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "reps",
        sa.Column("rep_id", sa.String(ID), primary_key=True),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "leads",
        sa.Column("lead_id", sa.String(ID), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "lead_id", sa.String(ID), sa.ForeignKey("leads.lead_id"), nullable=False, unique=True
        ),
        sa.Column("rep_id", sa.String(ID), sa.ForeignKey("reps.rep_id"), nullable=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("propensity", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("alternatives", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(ID), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_assignments_rep_id", "assignments", ["rep_id"])
    op.create_table(
        "rep_day_load",
        sa.Column("rep_id", sa.String(ID), sa.ForeignKey("reps.rep_id"), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("lead_id", sa.String(ID), sa.ForeignKey("leads.lead_id"), nullable=False),
        sa.Column("rep_id", sa.String(ID), sa.ForeignKey("reps.rep_id"), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("lead_id", "rep_id", name="uq_outcomes_lead_rep"),
    )
    op.create_index("ix_outcomes_rep_id", "outcomes", ["rep_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("lead_id", sa.String(ID), nullable=False),
        sa.Column("event", sa.String(ID), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_events_lead_id", "events", ["lead_id"])


def downgrade() -> None:
    """Drop every table of the first schema."""
    for table in (
        "events",
        "outcomes",
        "rep_day_load",
        "assignments",
        "leads",
        "reps",
        "api_keys",
    ):
        op.drop_table(table)
