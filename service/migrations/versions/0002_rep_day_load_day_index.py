"""Index the day counters by day: the route planner reads one day's counters per batch.

Without it every route batch scanned the whole ``rep_day_load`` table, one row per rep
and day ever routed (1,000 reps: 365,000 rows a year), so routing slowed down as the
store aged.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the day index."""
    op.create_index("ix_rep_day_load_day", "rep_day_load", ["day"])


def downgrade() -> None:
    """Drop the day index."""
    op.drop_index("ix_rep_day_load_day", table_name="rep_day_load")
