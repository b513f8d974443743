"""Vector tiles: Mapbox Vector Tiles made by PostGIS, and GeoJSON tiles, per XYZ in WebMercatorQuad.

PostGIS produces the finished bytes (``ST_AsMVT``); Python passes them through.
Each tile query is one statement with z/x/y as parameters; the unfiltered ones
are prepared once per database connection (``PREPARE``/``EXECUTE``), so a tile
costs no planning.

What a client gets at each zoom (licences):

=========  ====================================================================
zoom       content
=========  ====================================================================
0–8        layer ``licences``: the licences spanning at least 4 pixels (of a
           256-pixel tile) at that zoom, simplified to a quarter pixel of zoom
           8, attributes ``status`` and ``licence_type``.
           Layer ``licence_density``: every smaller licence, counted in a
           64 × 64 grid of square cells per tile (a cell is 4 pixels), by the
           cell holding the centre of its bounding box. Each cell carries ``n``
           (licences), ``applied``, ``granted`` (licences in those states) and
           ``area_km2`` (their summed geodesic area; overlaps count twice).
           Every licence is in exactly one of the two layers.
9–11       every licence in ``licences``, simplified to a quarter pixel of
           zoom 11; all public attributes
12–22      every licence at full resolution; all public attributes
=========  ====================================================================

The generalised geometry, the zoom from which a licence is drawn and the
density cells are stored (generated columns and a table kept by triggers in
the writing transaction), so a low-zoom tile reads a few thousand rows at most
whatever the size of the register, and is never stale.

Other collections (jurisdictions, reserved areas) are small: every feature at
every zoom, simplified to a quarter pixel below zoom 12.

Filters (``status``, ``type``, ``province``, ``mineral`` and CQL2) apply to both
layers; with ``mineral`` or CQL2 the density cells are counted at request time
from the matching licences.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, cast, literal_column, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import BigInteger, Boolean, Float, String

from cadastre.auth import PUBLIC, Principal
from cadastre.db.features import Collection
from cadastre.db.filters import LicenceFilter
from cadastre.db.tables import (
    DENSITY_CELLS,
    LOW_ZOOM_MAX,
    WORLD_M,
    finest_cell,
    survey_features,
    survey_layers,
)

__all__ = [
    "LOW_ZOOM_MAX",
    "TileLayer",
    "TileQuery",
    "check_tile",
    "layer",
    "pixel_m",
    "survey_layer",
    "tile",
]
from cadastre.errors import BadQuery, NotFound
from cadastre.survey.access import visible

EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 22
MID_ZOOM_MAX = 11
#: Web Mercator metres per tile at zoom 0.
WORLD = WORLD_M
DENSITY_LAYER = "licence_density"
_DIALECT = postgresql.psycopg2.dialect()  # type: ignore[no-untyped-call]


def pixel_m(z: int) -> float:
    """Size of one tile pixel (of 256) at zoom ``z``, in Web Mercator metres."""
    return WORLD / (256 * 2.0**z)


@dataclass(frozen=True)
class TileLayer:
    """A collection as a tile layer: its source SQL and the attributes per zoom band."""

    id: str
    source: str  # a fixed FROM clause with columns id, geom (4326) and the attributes
    attributes: tuple[str, ...]
    low_zoom_attributes: tuple[str, ...]
    integer_id: bool = True  # MVT feature ids must be integers
    field_types: dict[str, str] | None = None  # TileJSON field types, where known


#: The licences: the current register, generalised (see the module docs).
LICENCE_ATTRIBUTES = (
    "licence_no",
    "licence_type",
    "minerals",
    "holder",
    "province_code",
    "status",
    "area_km2",
    "granted_on",
    "expires_on",
)
LICENCE_LOW_ATTRIBUTES = ("status", "licence_type")
DENSITY_ATTRIBUTES = ("n", "applied", "granted", "area_km2")
_LICENCE_SELECT = {
    "licence_no": "l.licence_no",
    "licence_type": "l.licence_type",
    "minerals": "array_to_string(l.minerals, '; ')",
    "holder": "p.name",
    "province_code": "l.province_code",
    "status": "l.status",
    "area_km2": "round(l.area_km2::numeric, 3)::float8",
    "granted_on": "l.granted_on::text",
    "expires_on": "l.expires_on::text",
}

LAYERS: dict[str, TileLayer] = {
    "licences": TileLayer(
        id="licences",
        source="licences",
        attributes=LICENCE_ATTRIBUTES,
        low_zoom_attributes=LICENCE_LOW_ATTRIBUTES,
    ),
    "jurisdictions": TileLayer(
        id="jurisdictions",
        source="(SELECT code AS id, code, name, kind, geom FROM jurisdictions) AS src",
        attributes=("code", "name", "kind"),
        low_zoom_attributes=("code", "name", "kind"),
        integer_id=False,
    ),
    "reserved_areas": TileLayer(
        id="reserved_areas",
        source="(SELECT id, name, kind, province_code, geom FROM reserved_areas) AS src",
        attributes=("name", "kind", "province_code"),
        low_zoom_attributes=("name", "kind"),
    ),
}


#: Survey attribute type -> (SQL type in tiles, TileJSON field type); dates travel as text.
_SURVEY_TILE_TYPES: dict[str, tuple[Any, str]] = {
    "integer": (BigInteger, "Number"),
    "number": (Float, "Number"),
    "boolean": (Boolean, "Boolean"),
}


def _braces(sql: str) -> str:
    return sql.replace("{", "{{").replace("}", "}}")


def survey_layer(conn: Connection, slug: str, who: Principal = PUBLIC) -> TileLayer | None:
    """A vector survey layer of the catalogue as a tile source (None when there is none,
    or ``who`` may not read it).

    The jsonb properties become one typed column per attribute of the layer's
    schema. Attribute names come from users' files, so they reach the SQL only
    quoted by SQLAlchemy (identifiers and string literals, ``%`` doubled as
    for bound statements) and with braces escaped for the tile templates.
    """
    row = conn.execute(
        select(survey_layers.c.id, survey_layers.c.attributes).where(
            survey_layers.c.slug == slug, survey_layers.c.storage == "vector", visible(who)
        )
    ).first()
    if row is None:
        return None
    f = survey_features
    cols: list[Any] = [f.c.fid.label("id")]
    types: dict[str, str] = {}
    for attr in row.attributes:
        sql_type, field_type = _SURVEY_TILE_TYPES.get(attr["type"], (None, "String"))
        value = f.c.properties[attr["name"]].astext
        cols.append((value if sql_type is None else cast(value, sql_type)).label(attr["name"]))
        types[attr["name"]] = field_type
    query = select(*cols, literal_column("geom")).where(f.c.layer_id == int(row.id))
    compiled = query.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True})
    names = tuple(types)
    return TileLayer(
        id=slug,
        source=f"({_braces(str(compiled))}) AS src",
        attributes=names,
        low_zoom_attributes=names,
        field_types=types,
    )


def layer(collection_id: str, conn: Connection | None = None, who: Principal = PUBLIC) -> TileLayer:
    """The tile source of a collection; survey layers come from the catalogue (needs
    ``conn``), and one that ``who`` may not read is not found."""
    found = LAYERS.get(collection_id)
    if found is None and conn is not None:
        found = survey_layer(conn, collection_id, who)
    if found is None:
        raise NotFound(f"no tile source {collection_id!r}", field="collection")
    return found


def check_tile(z: int, x: int, y: int) -> None:
    """Refuse a tile address outside WebMercatorQuad."""
    if not 0 <= z <= MAX_ZOOM:
        raise BadQuery(f"zoom {z} is outside 0..{MAX_ZOOM}", field="z")
    n = 2**z
    if not (0 <= x < n and 0 <= y < n):
        raise BadQuery(f"tile {z}/{x}/{y} does not exist: x and y run 0..{n - 1}", field="x")


@dataclass(frozen=True)
class TileQuery:
    """What a tile request asks beyond its address: the filters, already validated."""

    plain: LicenceFilter = field(default_factory=LicenceFilter)
    cql: ColumnElement[bool] | None = None  # over the items collection's columns
    cql_key: str = ""  # the canonical CQL2 JSON, for cache keys
    collection: Collection | None = None  # the items collection the CQL2 refers to
    #: Unpublished applications the reader sees besides the public register: None, a
    #: province code or "*" (all). Their tiles are made apart from the public ones.
    unpublished: str | None = None

    def __bool__(self) -> bool:
        return bool(self.plain) or self.cql is not None or self.unpublished is not None

    def key(self) -> str:
        return f"{self.plain.key()}|{self.cql_key}|{self.unpublished or ''}"


# --------------------------------------------------------------------------- SQL


@dataclass(frozen=True)
class _Statement:
    sql: str  # with {z} {x} {y} placeholders for the tile address
    params: dict[str, Any]

    def render(self, style: str) -> str:
        if style == "prepared":  # run without parameters: a doubled % is a single one again
            return self.sql.format(z="$1", x="$2", y="$3").replace("%%", "%")
        return self.sql.format(z="%(tile_z)s", x="%(tile_x)s", y="%(tile_y)s")


def _compile(cond: ColumnElement[bool]) -> tuple[str, dict[str, Any]]:
    """SQL text and bound values of a filter expression (values never enter the text)."""
    compiled = cond.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    sql = str(compiled).replace("{", "{{").replace("}", "}}")
    return sql, dict(compiled.params)


def _licence_where(q: TileQuery) -> tuple[str, dict[str, Any]]:
    """Extra WHERE text (starting with AND) over ``licences l`` for the request's filters."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if q.unpublished is None:
        parts.append("l.published")
    elif q.unpublished != "*":
        parts.append("(l.published OR l.province_code = %(viewer_province)s)")
        params["viewer_province"] = q.unpublished
    plain = q.plain.where(
        literal_column("l.status"),
        literal_column("l.licence_type"),
        literal_column("l.province_code"),
        literal_column("l.minerals"),
    )
    if plain is not None:
        sql, p = _compile(plain)
        parts.append(sql)
        params.update(p)
    if q.cql is not None and q.collection is not None:
        ids = select(q.collection.column("id")).where(q.cql)
        sql, p = _compile(literal_column("l.id").in_(ids))
        parts.append(sql)
        params.update(p)
    return "".join(f" AND {s}" for s in parts), params


def _density_counts(z: int, q: TileQuery) -> tuple[str, dict[str, Any]]:
    """The cells of tile (z, x, y): stored counts, or counted now under a mineral/CQL2 filter."""
    lo_x = f"{{x}} * {DENSITY_CELLS}"
    lo_y = f"{{y}} * {DENSITY_CELLS}"
    hi = DENSITY_CELLS - 1
    sums = (
        "sum(n)::int AS n, "
        "coalesce(sum(n) FILTER (WHERE status = 'applied'), 0)::int AS applied, "
        "coalesce(sum(n) FILTER (WHERE status = 'granted'), 0)::int AS granted, "
        "round(sum(area_km2)::numeric, 3)::float8 AS area_km2"
    )
    if not q:
        return (
            f"""SELECT cx, cy, n, applied, granted, round(area_km2::numeric, 3)::float8 AS area_km2
                FROM licence_cells
                WHERE level = {z} AND cx BETWEEN {lo_x} AND {lo_x} + {hi}
                  AND cy BETWEEN {lo_y} AND {lo_y} + {hi}""",
            {},
        )
    if q.cql is None and not q.plain.minerals and q.unpublished is None:
        # The stored cells count published licences only: the public's view.
        where, params = _compile(
            and_(
                *q.plain.conditions(
                    literal_column("status"),
                    literal_column("licence_type"),
                    literal_column("province_code"),
                )
            )
        )
        return (
            f"""SELECT cx, cy, {sums} FROM licence_density
                WHERE level = {z} AND cx BETWEEN {lo_x} AND {lo_x} + {hi}
                  AND cy BETWEEN {lo_y} AND {lo_y} + {hi} AND {where}
                GROUP BY cx, cy""",
            params,
        )
    where, params = _licence_where(q)
    shift = LOW_ZOOM_MAX - z
    return (
        f"""SELECT cx, cy, {sums} FROM (
                SELECT c.cx >> {shift} AS cx, c.cy >> {shift} AS cy,
                       1 AS n, l.status, l.area_km2
                FROM licences l, b, LATERAL {finest_cell("l.geom")} AS c
                WHERE l.geom_mid && b.envm AND l.minzoom > {z}{where}
            ) AS cells
            WHERE cx BETWEEN {lo_x} AND {lo_x} + {hi} AND cy BETWEEN {lo_y} AND {lo_y} + {hi}
            GROUP BY cx, cy""",
        params,
    )


def _cell_envelope(z: int) -> str:
    size = WORLD / (DENSITY_CELLS * 2**z)
    half = WORLD / 2
    return (
        f"ST_MakeEnvelope({-half}::float8 + c.cx * {size}::float8, "
        f"{half}::float8 - (c.cy + 1) * {size}::float8, "
        f"{-half}::float8 + (c.cx + 1) * {size}::float8, "
        f"{half}::float8 - c.cy * {size}::float8, 3857)"
    )


def _cell_in_tile() -> str:
    """A density cell drawn straight in tile coordinates (no ST_AsMVTGeom: the cell is a
    square of whole grid units inside the tile). The ring is reversed so that its area is
    positive with y down, as MVT wants of an exterior ring."""
    unit = EXTENT // DENSITY_CELLS
    px = f"(c.cx - {{x}} * {DENSITY_CELLS}) * {unit}"
    py = f"(c.cy - {{y}} * {DENSITY_CELLS}) * {unit}"
    return f"ST_Reverse(ST_MakeEnvelope({px}, {py}, {px} + {unit}, {py} + {unit}))"


_BOUNDS = (
    "SELECT ST_TileEnvelope({z}, {x}, {y}) AS env, "
    f"ST_TileEnvelope({{z}}, {{x}}, {{y}}, margin => {BUFFER / EXTENT}) AS envm"
)


def _licence_band(z: int) -> tuple[str, str, tuple[str, ...], str]:
    """(drawn geometry in 3857, index condition, attributes, extra condition) for zoom z."""
    if z <= LOW_ZOOM_MAX:
        return (
            "l.geom_low",
            "l.geom_low && b.envm",
            LICENCE_LOW_ATTRIBUTES,
            f" AND l.minzoom <= {z}",
        )
    if z <= MID_ZOOM_MAX:
        return "l.geom_mid", "l.geom_mid && b.envm", LICENCE_ATTRIBUTES, ""
    return (
        "ST_Transform(l.geom, 3857)",
        "l.geom && ST_Transform(b.envm, 4326)",
        LICENCE_ATTRIBUTES,
        "",
    )


def _licences_statement(z: int, kind: str, q: TileQuery) -> _Statement:
    geom, index, attrs, extra = _licence_band(z)
    where, params = _licence_where(q)
    join = " JOIN parties p ON p.id = l.holder_id" if "holder" in attrs else ""
    low = z <= LOW_ZOOM_MAX
    if low:
        counts, cparams = _density_counts(z, q)
        params = {**params, **cparams}
    if kind == "mvt":
        cols = "".join(f", {_LICENCE_SELECT[a]} AS {a}" for a in attrs)
        sql = f"""
            WITH b AS ({_BOUNDS})
            SELECT coalesce((
                SELECT ST_AsMVT(t.*, 'licences', {EXTENT}, 'geom', 'id') FROM (
                    SELECT l.id, ST_AsMVTGeom({geom}, b.env, {EXTENT}, {BUFFER}, true) AS geom{cols}
                    FROM b, licences l{join}
                    WHERE {index}{extra}{where} OFFSET 0
                ) AS t WHERE t.geom IS NOT NULL), ''::bytea)"""
        if low:
            dcols = ", ".join(f"c.{a}" for a in DENSITY_ATTRIBUTES)
            sql += f"""
            || coalesce((
                SELECT ST_AsMVT(d.*, '{DENSITY_LAYER}', {EXTENT}, 'geom') FROM (
                    SELECT {_cell_in_tile()} AS geom, {dcols}
                    FROM ({counts}) AS c
                ) AS d), ''::bytea)"""
        return _Statement(sql, params)
    props = ", ".join(f"'{a}', {_LICENCE_SELECT[a]}" for a in attrs)
    features = f"""
        SELECT l.id AS sort, json_build_object('type', 'Feature', 'id', l.id,
                   'geometry', ST_AsGeoJSON(g.g, 7)::json,
                   'properties', json_build_object({props})) AS f
        FROM b, licences l{join},
             LATERAL (SELECT ST_ForcePolygonCCW(ST_Transform(
                 ST_Intersection({geom}, b.envm), 4326)) AS g) AS g
        WHERE {index}{extra}{where} AND NOT ST_IsEmpty(g.g)"""
    if low:
        dprops = ", ".join(f"'{a}', c.{a}" for a in DENSITY_ATTRIBUTES)
        features += f"""
        UNION ALL
        SELECT NULL, json_build_object('type', 'Feature',
                   'id', '{DENSITY_LAYER}/{z}/' || c.cx || '/' || c.cy,
                   'geometry', ST_AsGeoJSON(
                       ST_ForcePolygonCCW(ST_Transform({_cell_envelope(z)}, 4326)), 7)::json,
                   'properties', json_build_object('layer', '{DENSITY_LAYER}', {dprops}))
        FROM b, ({counts}) AS c"""
    sql = f"""
        WITH b AS ({_BOUNDS}), feats AS ({features})
        SELECT CASE WHEN count(*) = 0 THEN NULL ELSE
            json_build_object('type', 'FeatureCollection',
                'features', json_agg(f ORDER BY sort NULLS LAST))::text END
        FROM feats"""
    return _Statement(sql, params)


def _ident(name: str) -> str:
    return _braces(_DIALECT.identifier_preparer.quote(name))


_STRING_LITERAL: Any = String().literal_processor(_DIALECT)  # type: ignore[no-untyped-call]


def _literal(value: str) -> str:
    return _braces(str(_STRING_LITERAL(value)))


def _other_statement(lay: TileLayer, z: int, kind: str, q: TileQuery) -> _Statement:
    attrs = lay.attributes if z > LOW_ZOOM_MAX else lay.low_zoom_attributes
    geom_3857 = (
        f"ST_SimplifyPreserveTopology(ST_Transform(src.geom, 3857), {pixel_m(z) / 4})"
        if z < 12
        else "ST_Transform(src.geom, 3857)"
    )
    where = "src.geom && ST_Transform(b.envm, 4326)"
    params: dict[str, Any] = {}
    if q.cql is not None and q.collection is not None:
        ids = select(q.collection.column("id")).where(q.cql)
        sql, params = _compile(literal_column("src.id").in_(ids))
        where += f" AND {sql}"
    if kind == "mvt":
        cols = "".join(f", src.{_ident(a)}" for a in attrs)
        id_col = "src.id, " if lay.integer_id else ""
        id_arg = ", 'id'" if lay.integer_id else ""
        return _Statement(
            f"""
            WITH b AS ({_BOUNDS}), t AS (
                SELECT {id_col}ST_AsMVTGeom({geom_3857}, b.env, {EXTENT}, {BUFFER}, true) AS geom
                       {cols}
                FROM {lay.source}, b
                WHERE {where} OFFSET 0
            )
            SELECT coalesce(ST_AsMVT(t.*, '{lay.id}', {EXTENT}, 'geom'{id_arg}), ''::bytea)
            FROM t WHERE t.geom IS NOT NULL""",
            params,
        )
    props = ", ".join(f"{_literal(a)}, src.{_ident(a)}" for a in attrs)
    return _Statement(
        f"""
        WITH b AS ({_BOUNDS}), t AS (
            SELECT src.id,
                   ST_ForcePolygonCCW(ST_Transform(
                       ST_Intersection({geom_3857}, b.envm), 4326)) AS g,
                   json_build_object({props}) AS props
            FROM {lay.source}, b
            WHERE {where}
        )
        SELECT CASE WHEN count(*) = 0 THEN NULL ELSE
            json_build_object('type', 'FeatureCollection', 'features',
                json_agg(json_build_object('type', 'Feature', 'id', t.id,
                    'geometry', ST_AsGeoJSON(t.g, 7)::json, 'properties', t.props)
                    ORDER BY t.id))::text END
        FROM t WHERE NOT ST_IsEmpty(t.g)""",
        params,
    )


def _statement(lay: TileLayer, z: int, kind: str, q: TileQuery) -> _Statement:
    if q.plain and lay.id != "licences":
        raise BadQuery(
            "status, type, province and mineral filter the licences only", field="status"
        )
    if lay.id == "licences":
        return _licences_statement(z, kind, q)
    return _other_statement(lay, z, kind, q)


# ----------------------------------------------------------------------- running


def _prepared_form(stmt: _Statement) -> tuple[str, str]:
    sql = stmt.render("prepared")
    return "cadastre_tile_" + hashlib.sha1(sql.encode()).hexdigest()[:20], sql


@functools.lru_cache(maxsize=1024)
def _builtin_prepared(layer_id: str, z: int, kind: str) -> tuple[str, str]:
    """(name, SQL) of an unfiltered tile of a built-in layer: built once per process."""
    return _prepared_form(_statement(LAYERS[layer_id], z, kind, TileQuery()))


def _run(conn: Connection, stmt: _Statement | tuple[str, str], z: int, x: int, y: int) -> Any:
    """Run a tile statement through SQLAlchemy's driver-level call, so database errors
    arrive as SQLAlchemy's (a lost connection invalidates the pool, a bad value is a 4xx)."""
    if isinstance(stmt, _Statement) and stmt.params:  # filtered: planned for its values
        params = {**stmt.params, "tile_z": z, "tile_x": x, "tile_y": y}
        return conn.exec_driver_sql(stmt.render("pyformat"), params).scalar()
    # the common case: prepared once per connection, then only executed
    name, sql = _prepared_form(stmt) if isinstance(stmt, _Statement) else stmt
    prepared: set[str] = conn.connection.info.setdefault("cadastre_prepared", set())
    if name not in prepared:  # our own SQL, sent as it is (no parameters to format)
        with conn.connection.dbapi_connection.cursor() as cur:  # type: ignore[union-attr]
            cur.execute(f"PREPARE {name} (integer, integer, integer) AS {sql}")
        prepared.add(name)
    return conn.exec_driver_sql(f"EXECUTE {name} (%s, %s, %s)", (z, x, y)).scalar()


def tile(
    conn: Connection,
    collection_id: str,
    z: int,
    x: int,
    y: int,
    kind: str = "mvt",
    query: TileQuery | None = None,
    who: Principal = PUBLIC,
) -> bytes | None:
    """One tile made by PostGIS: MVT bytes or GeoJSON text (UTF-8); None when it is empty.

    GeoJSON tiles are clipped to the tile plus a small buffer, simplified to the
    zoom's resolution, in WGS 84 lon/lat (RFC 7946).
    """
    check_tile(z, x, y)
    if not query and collection_id in LAYERS:
        result = _run(conn, _builtin_prepared(collection_id, z, kind), z, x, y)
    else:
        lay = layer(collection_id, conn, who)
        result = _run(conn, _statement(lay, z, kind, query or TileQuery()), z, x, y)
    if result is None:
        return None
    body = bytes(result) if kind == "mvt" else str(result).encode()
    return body or None
