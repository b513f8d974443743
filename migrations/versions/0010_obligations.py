"""Obligations: an index on the events they are derived from.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 20:15:00.000000

Obligations are derived on read (cadastre/db/obligations.py) from the titles, the
licence-type rules and three kinds of event (``discovery``, ``obligation_met``,
``notice``); this partial index finds a licence's events of those kinds.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_licence_events_obligations",
        "licence_events",
        ["licence_id"],
        unique=False,
        postgresql_where=sa.text("action IN ('discovery', 'obligation_met', 'notice')"),
    )


def downgrade() -> None:
    op.drop_index("ix_licence_events_obligations", table_name="licence_events")
