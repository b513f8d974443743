"""Change feed and webhooks: event ids in commit order; webhook subscriptions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 19:15:00.000000

Licence event ids are taken under the register's write lock, so they are in commit
order (the change feed's cursor). ``webhook_subscriptions`` is granted to the
service role by 0006's default privileges.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cadastre.db.tables import EVENT_ORDER_DDL, EVENT_ORDER_DROP

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(EVENT_ORDER_DDL)
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column(
            "secret",
            sa.Text(),
            nullable=False,
            comment="HMAC-SHA256 key; never shown after creation",
        ),
        sa.Column("cursor", sa.BigInteger(), nullable=False, comment="last event id delivered"),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("url ~ '^https?://'", name=op.f("ck_webhook_subscriptions_url")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )


def downgrade() -> None:
    op.drop_table("webhook_subscriptions")
    op.execute(EVENT_ORDER_DROP)
