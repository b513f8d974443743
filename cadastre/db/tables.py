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

from cadastre.auth import ACCOUNT_ROLES
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
        Column(
            "published",
            Boolean,
            nullable=False,
            server_default=text("true"),
            comment="in the public register; only an application (or one refused "
            "unpublished) may be false",
        ),
        Column("version", Integer, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
    ]


# Map generalisation, derived by PostGIS from ``geom`` (see cadastre/db/tiles.py):
# Web Mercator geometry simplified for zoom bands, and the zoom from which a
# licence is big enough to draw. Stored, so no tile pays for them.
WORLD_M = 40075016.68557849  # Web Mercator metres per tile at zoom 0
#: Smallest zoom at which a geometry spans at least 4 pixels of a 256-pixel tile
#: (an IMMUTABLE SQL function, so a generated column may use it).
MINZOOM_FUNCTION = f"""
CREATE OR REPLACE FUNCTION cadastre_minzoom(g geometry) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN span > 0
        THEN greatest(0, least(30, ceil(log(2.0, ({WORLD_M} / (64.0 * span))::numeric))))::integer
        ELSE 30 END
    FROM (SELECT greatest(ST_XMax(b) - ST_XMin(b), ST_YMax(b) - ST_YMin(b)) AS span
          FROM (SELECT ST_Transform(ST_Envelope(g), 3857) AS b) AS box) AS s
$$;
"""  # noqa: S608 - constants of this module
MINZOOM = "cadastre_minzoom(geom)"
#: Low zooms (0-8) draw only licences of at least 4 pixels, simplified to a quarter
#: pixel of zoom 8; zooms 9-11 draw every licence simplified to a quarter pixel of zoom 11.
LOW_ZOOM_MAX = 8
#: Zooms with a partial index of their own on geom_low (lower zooms use the first).
LOW_INDEX_ZOOMS = (4, 5, 6, 7, 8)
GEOM_LOW = "ST_SimplifyPreserveTopology(ST_Transform(geom, 3857), 152.87405657)"
GEOM_MID = "ST_SimplifyPreserveTopology(ST_Transform(geom, 3857), 19.10925707)"

licences = Table(
    "licences",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    *_licence_state_columns(),
    Column("minzoom", Integer, Computed(MINZOOM, persisted=True), comment="drawn from this zoom"),
    Column(
        "geom_low",
        Geometry("GEOMETRY", srid=3857, spatial_index=False),
        Computed(GEOM_LOW, persisted=True),
    ),
    Column(
        "geom_mid",
        Geometry("GEOMETRY", srid=3857, spatial_index=False),
        Computed(GEOM_MID, persisted=True),
    ),
    UniqueConstraint("licence_no"),
    UniqueConstraint("province_code", "receipt_seq"),
    CheckConstraint(f"status IN ({_status_list})", name="status"),
    CheckConstraint(
        "expires_on IS NULL OR granted_on IS NULL OR expires_on > granted_on", name="dates"
    ),
    CheckConstraint("published OR status IN ('applied', 'refused')", name="published"),
    Index("ix_licences_geom", "geom", postgresql_using="gist"),
    Index("ix_licences_holder_id", "holder_id"),
    Index("ix_licences_status_province", "status", "province_code"),
    Index("ix_licences_minerals", "minerals", postgresql_using="gin"),
    # One small index per low zoom band: a zoom-z tile reads only licences drawn at z.
    *(
        Index(
            f"ix_licences_geom_low_z{z}",
            "geom_low",
            postgresql_using="gist",
            postgresql_where=text(f"minzoom <= {z}"),
        )
        for z in LOW_INDEX_ZOOMS
    ),
    Index("ix_licences_geom_mid", "geom_mid", postgresql_using="gist"),
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
    # The facts and notices obligations are derived from (cadastre/db/obligations.py).
    Index(
        "ix_licence_events_obligations",
        "licence_id",
        postgresql_where=text("action IN ('discovery', 'obligation_met', 'notice')"),
    ),
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
GENERATION_PLAIN_FUNCTION = _GENERATION_FUNCTION

GENERATION_NOTIFY_DDL = """
CREATE OR REPLACE FUNCTION cadastre_bump_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    new_value bigint;
BEGIN
    UPDATE register_generation SET value = value + 1 WHERE id = 1 RETURNING value INTO new_value;
    -- Delivered when the transaction commits, to every listening server process.
    PERFORM pg_notify('cadastre_generation', new_value::text);
    RETURN NULL;
END
$$;
"""
#: Channel on which each committed generation is announced.
GENERATION_CHANNEL = "cadastre_generation"

# Licences too small to draw at a low zoom, counted per cell of a 64 x 64 grid per
# tile (a cell is 4 pixels of a 256-pixel tile) and per status, type and province.
# Kept exact by statement triggers on ``licences`` in the writing transaction.
licence_density = Table(
    "licence_density",
    metadata,
    Column("level", Integer, nullable=False, comment="the zoom whose tiles the cells divide"),
    Column("cx", Integer, nullable=False, comment="cell column, from the west"),
    Column("cy", Integer, nullable=False, comment="cell row, from the north"),
    Column("status", Text, nullable=False),
    Column("licence_type", Text, nullable=False),
    Column("province_code", Text, nullable=False),
    Column("n", Integer, nullable=False),
    Column("area_km2", Float, nullable=False),
    PrimaryKeyConstraint("level", "cx", "cy", "status", "licence_type", "province_code"),
    # The cells a change emptied, found at once to be removed (revision 0009).
    Index("ix_licence_density_empty", "level", postgresql_where=text("n <= 0")),
)

# The same cells without the breakdown: what an unfiltered low-zoom tile reads
# (at most 64 x 64 rows per tile, whatever the size of the register).
licence_cells = Table(
    "licence_cells",
    metadata,
    Column("level", Integer, nullable=False),
    Column("cx", Integer, nullable=False),
    Column("cy", Integer, nullable=False),
    Column("n", Integer, nullable=False),
    Column("applied", Integer, nullable=False),
    Column("granted", Integer, nullable=False),
    Column("area_km2", Float, nullable=False),
    PrimaryKeyConstraint("level", "cx", "cy"),
    Index("ix_licence_cells_empty", "level", postgresql_where=text("n <= 0")),
)

#: Cells per tile side, and the finest level's cell size in Web Mercator metres.
DENSITY_CELLS = 64
_CELL_M = WORLD_M / (DENSITY_CELLS * 2**LOW_ZOOM_MAX)


def finest_cell(geom: str) -> str:
    """A subquery giving ``cx, cy``: the finest density cell holding ``geom``.

    The cell is the one holding the centre of the geometry's Web Mercator
    bounding box; cells of coarser levels are these shifted right, so they nest.
    """
    half = WORLD_M / 2
    return f"""(
        SELECT floor(((ST_XMin(b) + ST_XMax(b)) / 2 + {half}) / {_CELL_M})::int AS cx,
               floor(({half} - (ST_YMin(b) + ST_YMax(b)) / 2) / {_CELL_M})::int AS cy
        FROM (SELECT ST_Transform(ST_Envelope({geom}), 3857) AS b) AS box
    )"""  # noqa: S608 - geom is a column name of this project


def _level_rows(source: str, public_only: bool = True) -> str:
    """Each licence of ``source`` at each level below its ``minzoom``, with its cell there.

    ``public_only``: only published licences (the stored cells are the public map's;
    a signed-in officer's tiles add the unpublished applications they may see)."""
    where = " WHERE r.published" if public_only else ""
    return f"""
        SELECT lv.level,
               c.cx >> ({LOW_ZOOM_MAX} - lv.level) AS cx,
               c.cy >> ({LOW_ZOOM_MAX} - lv.level) AS cy,
               r.status, r.licence_type, r.province_code, r.area_km2
        FROM {source} AS r
        CROSS JOIN LATERAL {finest_cell("r.geom")} AS c
        JOIN generate_series(0, {LOW_ZOOM_MAX}) AS lv(level) ON r.minzoom > lv.level{where}
    """  # noqa: S608 - source is a table name of this module


def density_rows(source: str, public_only: bool = True) -> str:
    """SELECT of the ``licence_density`` rows that the licences in ``source`` contribute."""
    return f"""
        SELECT level, cx, cy, status, licence_type, province_code,
               count(*)::int AS n, sum(area_km2) AS area_km2
        FROM ({_level_rows(source, public_only)}) AS x
        GROUP BY level, cx, cy, status, licence_type, province_code
    """  # noqa: S608


def cell_rows(source: str, public_only: bool = True) -> str:
    """SELECT of the ``licence_cells`` rows that the licences in ``source`` contribute."""
    return f"""
        SELECT level, cx, cy, count(*)::int AS n,
               count(*) FILTER (WHERE status = 'applied')::int AS applied,
               count(*) FILTER (WHERE status = 'granted')::int AS granted,
               sum(area_km2) AS area_km2
        FROM ({_level_rows(source, public_only)}) AS x
        GROUP BY level, cx, cy
    """  # noqa: S608


def _match(keys: str) -> str:
    return " AND ".join(f"d.{k} = a.{k}" for k in keys.split(", "))


def _add(table: str, keys: str, values: tuple[str, ...], rows: str) -> str:
    sets = ", ".join(f"{v} = d.{v} + EXCLUDED.{v}" for v in values)
    return f"""
    INSERT INTO {table} AS d ({keys}, {", ".join(values)})
    {rows}
    ON CONFLICT ({keys}) DO UPDATE SET {sets};
    """


def _remove(table: str, keys: str, values: tuple[str, ...], rows: str) -> str:
    sets = ", ".join(f"{v} = d.{v} - a.{v}" for v in values)
    return f"""
    UPDATE {table} AS d SET {sets} FROM ({rows}) AS a WHERE {_match(keys)};
    DELETE FROM {table} AS d WHERE d.n <= 0 AND ({keys}) IN (SELECT {keys} FROM ({rows}) AS a);
    """  # noqa: S608


_DENSITY = (
    "licence_density",
    "level, cx, cy, status, licence_type, province_code",
    ("n", "area_km2"),
)
_CELLS = ("licence_cells", "level, cx, cy", ("n", "applied", "granted", "area_km2"))


def _density_add(source: str, public_only: bool) -> str:
    return _add(*_DENSITY, density_rows(source, public_only)) + _add(
        *_CELLS, cell_rows(source, public_only)
    )


def _density_remove(source: str, public_only: bool) -> str:
    return _remove(*_DENSITY, density_rows(source, public_only)) + _remove(
        *_CELLS, cell_rows(source, public_only)
    )


def _trigger_function(name: str, body: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
{body}
    RETURN NULL;
END
$$;
"""


def density_functions(public_only: bool) -> str:
    """The trigger functions keeping the cells: all licences (revision 0004, before
    licences could be unpublished) or the published ones only (revision 0006)."""
    return (
        _trigger_function("cadastre_density_insert", _density_add("new_rows", public_only))
        + _trigger_function(
            "cadastre_density_update",
            _density_remove("old_rows", public_only) + _density_add("new_rows", public_only),
        )
        + _trigger_function("cadastre_density_delete", _density_remove("old_rows", public_only))
        + _trigger_function(
            "cadastre_density_truncate",
            "    DELETE FROM licence_density;\n    DELETE FROM licence_cells;",
        )
    )


def _signed_levels(sources: tuple[tuple[str, int], ...]) -> str:
    return " UNION ALL ".join(
        f"SELECT x.*, {sign} AS sign FROM ({_level_rows(src, True)}) AS x"  # noqa: S608
        for src, sign in sources
    )


def _apply_delta(sources: tuple[tuple[str, int], ...]) -> str:
    """One statement adding (+1) and taking away (-1) the cells of the licences in each
    source: their level rows are computed once for both tables, keys whose counts do not
    change are left alone; then the emptied cells go (found by a partial index)."""
    keys = _DENSITY[1]
    return f"""
    WITH lv AS MATERIALIZED ({_signed_levels(sources)}),
    dens AS (
        INSERT INTO licence_density AS d ({keys}, n, area_km2)
        SELECT {keys}, sum(sign)::int, sum(sign * area_km2)
        FROM lv GROUP BY {keys}
        HAVING sum(sign) <> 0 OR abs(sum(sign * area_km2)) > 1e-9
        ON CONFLICT ({keys})
        DO UPDATE SET n = d.n + EXCLUDED.n, area_km2 = d.area_km2 + EXCLUDED.area_km2
    )
    INSERT INTO licence_cells AS d (level, cx, cy, n, applied, granted, area_km2)
    SELECT level, cx, cy, sum(sign)::int,
           coalesce(sum(sign) FILTER (WHERE status = 'applied'), 0)::int,
           coalesce(sum(sign) FILTER (WHERE status = 'granted'), 0)::int,
           sum(sign * area_km2)
    FROM lv GROUP BY level, cx, cy
    HAVING sum(sign) <> 0 OR abs(sum(sign * area_km2)) > 1e-9
        OR coalesce(sum(sign) FILTER (WHERE status = 'applied'), 0) <> 0
        OR coalesce(sum(sign) FILTER (WHERE status = 'granted'), 0) <> 0
    ON CONFLICT (level, cx, cy)
    DO UPDATE SET n = d.n + EXCLUDED.n, applied = d.applied + EXCLUDED.applied,
                  granted = d.granted + EXCLUDED.granted,
                  area_km2 = d.area_km2 + EXCLUDED.area_km2;
    DELETE FROM licence_density WHERE n <= 0;
    DELETE FROM licence_cells WHERE n <= 0;
    """  # noqa: S608 - table names of this module


#: The trigger functions of revision 0009: as :func:`density_functions` (published
#: licences only), each computing the cells of the rows it sees once.
DENSITY_DELTA_FUNCTIONS = (
    _trigger_function("cadastre_density_insert", _apply_delta((("new_rows", 1),)))
    + _trigger_function(
        "cadastre_density_update", _apply_delta((("old_rows", -1), ("new_rows", 1)))
    )
    + _trigger_function("cadastre_density_delete", _apply_delta((("old_rows", -1),)))
)


def density_rebuild(public_only: bool) -> str:
    """Statements recounting every cell from the licences held."""
    wipe = "DELETE FROM licence_density;\nDELETE FROM licence_cells;\n"
    return wipe + _density_add("licences", public_only)


DENSITY_DDL = (
    density_functions(public_only=False)
    + """
CREATE TRIGGER licences_density_insert AFTER INSERT ON licences
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cadastre_density_insert();
CREATE TRIGGER licences_density_update AFTER UPDATE ON licences
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cadastre_density_update();
CREATE TRIGGER licences_density_delete AFTER DELETE ON licences
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cadastre_density_delete();
CREATE TRIGGER licences_density_truncate AFTER TRUNCATE ON licences
    FOR EACH STATEMENT EXECUTE FUNCTION cadastre_density_truncate();
"""
    + _density_add("licences", public_only=False)
)
DENSITY_DROP = """
DROP TRIGGER IF EXISTS licences_density_insert ON licences;
DROP TRIGGER IF EXISTS licences_density_update ON licences;
DROP TRIGGER IF EXISTS licences_density_delete ON licences;
DROP TRIGGER IF EXISTS licences_density_truncate ON licences;
DROP FUNCTION IF EXISTS cadastre_density_insert();
DROP FUNCTION IF EXISTS cadastre_density_update();
DROP FUNCTION IF EXISTS cadastre_density_delete();
DROP FUNCTION IF EXISTS cadastre_density_truncate();
"""

SURVEY_KINDS = (
    "geology",
    "occurrences",
    "geochemistry",
    "geophysics",
    "drill_holes",
    "elevation",
    "other",
)
_survey_kind_list = ", ".join(f"'{k}'" for k in SURVEY_KINDS)

# The catalogue of survey layers, vector and raster: each is an OGC API
# collection and a tile source the moment its row commits.
survey_layers = Table(
    "survey_layers",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("slug", Text, nullable=False, unique=True, comment="collection id"),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("storage", Text, nullable=False, comment="vector or raster"),
    Column("description", Text),
    Column("source", Text, nullable=False, comment="who made it, where it came from"),
    Column("licence", Text, nullable=False, comment="the data licence, e.g. CC BY 4.0"),
    Column("synthetic", Boolean, nullable=False, server_default=text("false")),
    Column("original_crs", Text, comment="CRS of the file as received"),
    Column("geometry_type", Text, comment="vector: Point, LineString, Polygon or mixed"),
    Column(
        "attributes",
        JSONB,
        nullable=False,
        server_default=text("'[]'::jsonb"),
        comment="attribute schema: [{name, type}] with type string, integer, number, date",
    ),
    Column("feature_count", BigInteger, nullable=False, server_default=text("0")),
    Column("extent", Geometry("POLYGON", srid=4326, spatial_index=False), comment="footprint"),
    Column(
        "raster",
        JSONB,
        comment="raster: path, crs, resolution, width, height, bands, dtype, nodata, units, stats",
    ),
    Column("loaded_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("loaded_by", Text, nullable=False),
    Column(
        "public",
        Boolean,
        nullable=False,
        server_default=text("false"),
        comment="readable without signing in (open data); otherwise geologists and admins",
    ),
    CheckConstraint(f"kind IN ({_survey_kind_list})", name="kind"),
    CheckConstraint("storage IN ('vector', 'raster')", name="storage"),
    CheckConstraint("slug ~ '^[a-z][a-z0-9_]{0,62}$'", name="slug"),
)

# The features of every vector survey layer, with their attributes as JSON.
survey_features = Table(
    "survey_features",
    metadata,
    Column(
        "layer_id",
        BigInteger,
        ForeignKey("survey_layers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("fid", BigInteger, nullable=False, comment="feature id within the layer, from 1"),
    Column("properties", JSONB, nullable=False),
    Column("geom", Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False),
    PrimaryKeyConstraint("layer_id", "fid"),
    Index("ix_survey_features_geom", "geom", postgresql_using="gist"),
)

SURVEY_GENERATION_TABLES = ("survey_layers", "survey_features")
SURVEY_GENERATION_DDL = "".join(
    f"CREATE TRIGGER {t}_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {t} "
    "FOR EACH STATEMENT EXECUTE FUNCTION cadastre_bump_generation();\n"
    for t in SURVEY_GENERATION_TABLES
)

# ----------------------------------------------------------------- accounts

_role_list = ", ".join(f"'{r}'" for r in ACCOUNT_ROLES)

# People and machine clients who sign in; anonymous readers have no row. An officer
# is bound to one province and writes that province's licences only.
accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("username", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("province_code", Text, ForeignKey("jurisdictions.code")),
    Column("display_name", Text),
    Column("password_hash", Text, comment="argon2id; NULL: signs in by API key only"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("created_by", Text, nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
    CheckConstraint(f"role IN ({_role_list})", name="role"),
    CheckConstraint("(role = 'officer') = (province_code IS NOT NULL)", name="province"),
    CheckConstraint("username ~ '^[a-z0-9][a-z0-9._@-]{1,63}$'", name="username"),
    UniqueConstraint("username"),
)

# API keys of machine clients: only a SHA-256 of the key is kept (a key is 256 random
# bits, so a slow KDF adds nothing); the prefix finds the row and is shown in lists.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "account_id",
        BigInteger,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("prefix", Text, nullable=False, comment="first characters of the key, shown in lists"),
    Column("key_hash", Text, nullable=False, comment="hex SHA-256 of the whole key"),
    Column("name", Text, nullable=False, comment="what the key is for"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("revoked_at", DateTime(timezone=True)),
    UniqueConstraint("prefix"),
    UniqueConstraint("key_hash"),
)

#: The database role the service and the CLI act as (``SET ROLE`` on every new
#: connection): it may read and write the register but cannot UPDATE, DELETE or
#: TRUNCATE the event log, whatever the SQL it is made to run.
SERVICE_ROLE = "cadastre_service"

# Subscribers to the public change feed: each event is POSTed to ``url``, signed with
# ``secret`` (HMAC-SHA256 of the body), in feed order; ``cursor`` is the last event
# delivered (or skipped as not public). The secret is kept as given: the service
# needs it to sign.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False, comment="HMAC-SHA256 key; never shown after creation"),
    Column("cursor", BigInteger, nullable=False, comment="last event id delivered"),
    Column("failures", Integer, nullable=False, server_default=text("0")),
    Column(
        "next_attempt_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=text("now()"),
    ),
    Column("last_error", Text),
    Column("delivered", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("created_by", Text, nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
    CheckConstraint("url ~ '^https?://'", name="url"),
)

# Event ids are taken only under the register's write lock (revision 0008): a BEFORE
# STATEMENT trigger takes the lock before the statement's rows (and their identity
# defaults) are made, and the lock is held until commit. So ids are in commit order
# for every writer, including one that forgot ``lock_for_write``, and a reader that
# has seen event n has seen every committed event below n: the change feed's cursor.
EVENT_ORDER_DDL = """
CREATE OR REPLACE FUNCTION cadastre_event_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM register_generation WHERE id = 1 FOR UPDATE;
    RETURN NULL;
END
$$;
CREATE TRIGGER licence_events_commit_order
    BEFORE INSERT ON licence_events
    FOR EACH STATEMENT EXECUTE FUNCTION cadastre_event_order();
"""
EVENT_ORDER_DROP = """
DROP TRIGGER IF EXISTS licence_events_commit_order ON licence_events;
DROP FUNCTION IF EXISTS cadastre_event_order();
"""
