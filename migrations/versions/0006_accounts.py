"""Accounts, API keys, published applications, survey-layer visibility, the service role.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 18:50:00.000000

The service and the CLI act as the role ``cadastre_service`` (``SET ROLE`` on each
new connection): it may read and write every table but cannot UPDATE, DELETE or
TRUNCATE ``licence_events``, nor change Alembic's version table. Tables created
by later migrations get the same grants by default privileges. The role is
cluster-wide, so a downgrade revokes its grants in this database but keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cadastre.db.tables import SERVICE_ROLE, density_functions, density_rebuild

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLE_DDL = f"""
DO $$
BEGIN
    CREATE ROLE {SERVICE_ROLE} NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- made by another database of the cluster (or at the same moment)
END
$$;
DO $$
BEGIN
    IF NOT pg_has_role(current_user, '{SERVICE_ROLE}', 'MEMBER') THEN
        EXECUTE format('GRANT {SERVICE_ROLE} TO %I', current_user);
    END IF;
EXCEPTION WHEN unique_violation THEN
    NULL;
END
$$;
GRANT USAGE ON SCHEMA public TO {SERVICE_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {SERVICE_ROLE};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {SERVICE_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {SERVICE_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {SERVICE_ROLE};
REVOKE UPDATE, DELETE, TRUNCATE ON licence_events FROM {SERVICE_ROLE};
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {SERVICE_ROLE};
"""  # noqa: S608 - a constant role name

_ROLE_DROP = f"""
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {SERVICE_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {SERVICE_ROLE};
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {SERVICE_ROLE};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {SERVICE_ROLE};
REVOKE USAGE ON SCHEMA public FROM {SERVICE_ROLE};
"""  # noqa: S608 - a constant role name


def upgrade() -> None:
    for table in ("licences", "licence_versions"):
        op.add_column(
            table,
            sa.Column(
                "published",
                sa.Boolean(),
                server_default=sa.text("true"),
                nullable=False,
                comment="in the public register; only an application (or one refused "
                "unpublished) may be false",
            ),
        )
    op.create_check_constraint(
        op.f("ck_licences_published"), "licences", "published OR status IN ('applied', 'refused')"
    )
    op.add_column(
        "survey_layers",
        sa.Column(
            "public",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
            comment="readable without signing in (open data); otherwise geologists and admins",
        ),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("province_code", sa.Text(), nullable=True),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column(
            "password_hash",
            sa.Text(),
            nullable=True,
            comment="argon2id; NULL: signs in by API key only",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(role = 'officer') = (province_code IS NOT NULL)", name=op.f("ck_accounts_province")
        ),
        sa.CheckConstraint(
            "role IN ('geologist', 'officer', 'admin')", name=op.f("ck_accounts_role")
        ),
        sa.CheckConstraint(
            "username ~ '^[a-z0-9][a-z0-9._@-]{1,63}$'", name=op.f("ck_accounts_username")
        ),
        sa.ForeignKeyConstraint(
            ["province_code"],
            ["jurisdictions.code"],
            name=op.f("fk_accounts_province_code_jurisdictions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_accounts_username")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "prefix",
            sa.Text(),
            nullable=False,
            comment="first characters of the key, shown in lists",
        ),
        sa.Column("key_hash", sa.Text(), nullable=False, comment="hex SHA-256 of the whole key"),
        sa.Column("name", sa.Text(), nullable=False, comment="what the key is for"),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_api_keys_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_index(op.f("ix_api_keys_account_id"), "api_keys", ["account_id"], unique=False)
    # The stored map cells count published licences only (all are, so far).
    op.execute(density_functions(public_only=True))
    op.execute(_ROLE_DDL)


def downgrade() -> None:
    op.execute(_ROLE_DROP)
    op.execute(density_functions(public_only=False))
    op.execute(density_rebuild(public_only=False))  # unpublished applications count again
    op.drop_index(op.f("ix_api_keys_account_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("accounts")
    op.drop_column("survey_layers", "public")
    op.drop_constraint(op.f("ck_licences_published"), "licences", type_="check")
    op.drop_column("licence_versions", "published")
    op.drop_column("licences", "published")
