"""Change feed: licence event ids are taken under the register's write lock (commit order).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 19:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from cadastre.db.tables import EVENT_ORDER_DDL, EVENT_ORDER_DROP

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(EVENT_ORDER_DDL)


def downgrade() -> None:
    op.execute(EVENT_ORDER_DROP)
