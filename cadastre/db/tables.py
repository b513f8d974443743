"""The one schema source: SQLAlchemy Core tables with GeoAlchemy2 geometry columns.

Alembic autogenerates migrations from :data:`metadata`; a test checks that the
database after ``upgrade head`` has no drift from it.

Geometries are stored as ``MultiPolygon`` in EPSG:4326 (lon/lat), exterior
rings counter-clockwise (RFC 7946). Areas are geodesic, on the WGS 84
ellipsoid, computed by PostGIS from the stored geometry, so they can never
disagree with it.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from cadastre.domain.lifecycle import STATUSES

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

GEODESIC_KM2 = "ST_Area(geom::geography, true) / 1000000.0"
_status_list = ", ".join(f"'{s}'" for s in STATUSES)


def _multipolygon() -> Geometry:
    return Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)


jurisdictions = Table(
    "jurisdictions",
    metadata,
    Column("code", Text, primary_key=True, comment="ISO 3166-2 code, e.g. PK-BA"),
    Column("name", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False, comment="province or territory"),
    Column("geom", _multipolygon(), nullable=False),
    Column("area_km2", Float, Computed(GEODESIC_KM2, persisted=True)),
    Column("source", Text, nullable=False),
    Index("ix_jurisdictions_geom", "geom", postgresql_using="gist"),
)

# Province polygons cut into pieces of at most 256 vertices (ST_Subdivide): the
# point-in-province and boundary-crossing checks test small pieces instead of
# whole provinces with thousands of vertices. Derived from ``jurisdictions``.
jurisdiction_parts = Table(
    "jurisdiction_parts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "code",
        Text,
        ForeignKey("jurisdictions.code", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("geom", Geometry("POLYGON", srid=4326, spatial_index=False), nullable=False),
    Index("ix_jurisdiction_parts_geom", "geom", postgresql_using="gist"),
)

parties = Table(
    "parties",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False, server_default="company"),
    Column("registration_no", Text),
    Column("country", Text),
    Column("contact", JSONB, comment="personal contact details: never public"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("kind IN ('company', 'individual', 'state', 'other')", name="kind"),
    Index("uq_parties_name_lower", text("lower(name)"), unique=True),
)

beneficial_owners = Table(
    "beneficial_owners",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "party_id",
        BigInteger,
        ForeignKey("parties.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", Text, nullable=False),
    Column("nationality", Text),
    Column("share_pct", Numeric(5, 2)),
    CheckConstraint("share_pct IS NULL OR (share_pct > 0 AND share_pct <= 100)", name="share"),
)


def _licence_state_columns() -> list[Column[object]]:
    """Columns shared by the current register and its versions (one copy of the truth)."""
    return [
        Column("licence_no", Text, nullable=False),
        Column("licence_type", Text, nullable=False),
        Column("minerals", ARRAY(Text), nullable=False),
        Column("holder_id", BigInteger, ForeignKey("parties.id"), nullable=False),
        Column("province_code", Text, ForeignKey("jurisdictions.code"), nullable=False),
        Column("status", Text, nullable=False),
        Column("geom", _multipolygon(), nullable=False),
        Column("area_km2", Float, Computed(GEODESIC_KM2, persisted=True)),
        Column("submitted_geometry", Text, nullable=False, comment="as received: GeoJSON or WKT"),
        Column("submitted_crs", Text, nullable=False),
        Column("transformation", Text, nullable=False),
        Column("approximate_transformation", Boolean, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
        Column("receipt_seq", Integer, nullable=False),
        Column("applied_on", Date),
        Column("granted_on", Date),
        Column("expires_on", Date),
        Column("remarks", Text),
        Column("version", Integer, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
    ]


licences = Table(
    "licences",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    *_licence_state_columns(),
    UniqueConstraint("licence_no"),
    UniqueConstraint("province_code", "receipt_seq"),
    CheckConstraint(f"status IN ({_status_list})", name="status"),
    CheckConstraint(
        "expires_on IS NULL OR granted_on IS NULL OR expires_on > granted_on", name="dates"
    ),
    Index("ix_licences_geom", "geom", postgresql_using="gist"),
    Index("ix_licences_holder_id", "holder_id"),
    Index("ix_licences_status_province", "status", "province_code"),
    Index("ix_licences_minerals", "minerals", postgresql_using="gin"),
)

# Every state a licence has been in: the current one has valid_to NULL. Answers
# "what did the register show at time t" (``as_of``) and backs the history.
licence_versions = Table(
    "licence_versions",
    metadata,
    Column("licence_id", BigInteger, ForeignKey("licences.id"), nullable=False),
    *_licence_state_columns(),
    Column("valid_from", DateTime(timezone=True), nullable=False),
    Column("valid_to", DateTime(timezone=True)),
    PrimaryKeyConstraint("licence_id", "version"),
    CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="period"),
    Index("ix_licence_versions_geom", "geom", postgresql_using="gist"),
    Index(
        "ix_licence_versions_current",
        "licence_id",
        unique=True,
        postgresql_where=text("valid_to IS NULL"),
    ),
    Index("ix_licence_versions_period", "valid_from", "valid_to"),
)

receipt_counters = Table(
    "receipt_counters",
    metadata,
    Column("province_code", Text, ForeignKey("jurisdictions.code"), primary_key=True),
    Column("last_seq", Integer, nullable=False),
)

# Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE (see migrations).
licence_events = Table(
    "licence_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("licence_id", BigInteger, ForeignKey("licences.id"), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column(
        "occurred_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=text("clock_timestamp()"),
    ),
    Column("before", JSONB),
    Column("after", JSONB),
    Column("note", Text),
)

APPEND_ONLY_DDL = """
CREATE OR REPLACE FUNCTION cadastre_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER licence_events_append_only
    BEFORE UPDATE OR DELETE ON licence_events
    FOR EACH ROW EXECUTE FUNCTION cadastre_append_only();
CREATE TRIGGER licence_events_no_truncate
    BEFORE TRUNCATE ON licence_events
    FOR EACH STATEMENT EXECUTE FUNCTION cadastre_append_only();
"""

RESERVED_KINDS = ("protected", "forest", "strategic", "religious", "auction_reserved")
_reserved_kind_list = ", ".join(f"'{k}'" for k in RESERVED_KINDS)

# Closed ground: no licence may be granted over it.
reserved_areas = Table(
    "reserved_areas",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("province_code", Text, ForeignKey("jurisdictions.code")),
    Column("geom", _multipolygon(), nullable=False),
    Column("area_km2", Float, Computed(GEODESIC_KM2, persisted=True)),
    Column("source", Text, nullable=False),
    Column("designated_on", Date),
    Column("remarks", Text),
    CheckConstraint(f"kind IN ({_reserved_kind_list})", name="kind"),
    Index("ix_reserved_areas_geom", "geom", postgresql_using="gist"),
)

# What the overlap check found when an application was received: conflicts
# are recorded on the application, never silently dropped.
licence_conflicts = Table(
    "licence_conflicts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("licence_id", BigInteger, ForeignKey("licences.id"), nullable=False, index=True),
    Column("other_licence_id", BigInteger, ForeignKey("licences.id")),
    Column("reserved_area_id", BigInteger, ForeignKey("reserved_areas.id")),
    Column("kind", Text, nullable=False, comment="title, application or reserved_area"),
    Column("overlap_km2", Float, nullable=False),
    Column("simultaneous", Boolean, nullable=False, server_default=text("false")),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("(other_licence_id IS NULL) <> (reserved_area_id IS NULL)", name="one_other"),
)

# One row counting committed changes to anything drawn on a map. Readers see the
# committed value only, so a cache keyed by it is invalid the moment a change commits.
register_generation = Table(
    "register_generation",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

GENERATION_TABLES = ("licences", "reserved_areas", "jurisdictions")

_GENERATION_FUNCTION = """
INSERT INTO register_generation (id, value) VALUES (1, 1) ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION cadastre_bump_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE register_generation SET value = value + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
"""
_GENERATION_TRIGGERS = "".join(
    f"CREATE TRIGGER {t}_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {t} "
    "FOR EACH STATEMENT EXECUTE FUNCTION cadastre_bump_generation();\n"
    for t in GENERATION_TABLES
)
GENERATION_DDL = _GENERATION_FUNCTION + _GENERATION_TRIGGERS
