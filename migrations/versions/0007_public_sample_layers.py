"""The sample survey layers already loaded are public, as `cadastre load-sample` now loads them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 20:30:00.000000

0006 made every existing survey layer restricted (``public`` false). The layers
that ``cadastre load-sample`` ships are open data (USGS occurrences, GEM faults)
or invented demonstration data (the SYNTHETIC geology and aeromagnetic grid),
and a fresh ``load-sample`` now marks them public; this brings a database
loaded before it to the same state. Only rows the sample loader wrote are
touched. Data only: no schema change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SAMPLE_SLUGS = (
    "mineral_occurrences_usgs",
    "active_faults_gem2017",
    "geology_synthetic",
    "aeromag_chagai_synthetic",
)
_SAMPLE_ROWS = sa.text(
    "UPDATE survey_layers SET public = :public "
    "WHERE loaded_by = 'sample-loader' AND slug = ANY(:slugs)"
)


def upgrade() -> None:
    op.get_bind().execute(_SAMPLE_ROWS, {"public": True, "slugs": list(SAMPLE_SLUGS)})


def downgrade() -> None:
    op.get_bind().execute(_SAMPLE_ROWS, {"public": False, "slugs": list(SAMPLE_SLUGS)})
