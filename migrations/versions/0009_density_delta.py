"""Map density cells kept by one statement per change: each change's cells computed once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 20:00:00.000000

The statement triggers of 0004/0006 computed the cells of the changed rows six times
per UPDATE (taking away and adding, for two tables, and again to find emptied cells).
Now the old rows count -1 and the new +1 in one pass feeding both tables; keys whose
counts do not change are left alone; emptied cells are found by a partial index.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from cadastre.db.tables import DENSITY_DELTA_FUNCTIONS, density_functions

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_licence_density_empty",
        "licence_density",
        ["level"],
        unique=False,
        postgresql_where="n <= 0",
    )
    op.create_index(
        "ix_licence_cells_empty",
        "licence_cells",
        ["level"],
        unique=False,
        postgresql_where="n <= 0",
    )
    op.execute(DENSITY_DELTA_FUNCTIONS)


def downgrade() -> None:
    op.execute(density_functions(public_only=True))
    op.drop_index("ix_licence_cells_empty", table_name="licence_cells")
    op.drop_index("ix_licence_density_empty", table_name="licence_density")
