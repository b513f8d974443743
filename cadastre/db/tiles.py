"""Vector tiles: Mapbox Vector Tiles made by PostGIS, and GeoJSON tiles, per XYZ in WebMercatorQuad.

PostGIS produces the finished bytes (``ST_AsMVT``); Python passes them through.
Each tile query is one statement with z/x/y as bound parameters.

What a client gets at each zoom (licences):

=========  ==============================================================
zoom       content
=========  ==============================================================
0–7        licences of at least ``min_area_km2(z)`` (about 4 tile pixels),
           simplified to a quarter pixel; attributes ``id``, ``status``,
           ``licence_type``
8–11       every licence, simplified to a quarter pixel; all public attributes
12–22      every licence at full resolution; all public attributes
=========  ==============================================================

Other collections (jurisdictions, reserved areas) are small: every feature at
every zoom, simplified to a quarter pixel below zoom 12.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from cadastre.errors import BadQuery, NotFound

EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 22
#: Web Mercator metres per tile at zoom 0.
WORLD = 40075016.68557849


def pixel_m(z: int) -> float:
    """Size of one tile pixel (of 256) at zoom ``z``, in Web Mercator metres."""
    return WORLD / (256 * 2.0**z)


def min_area_km2(z: int) -> float:
    """Smallest licence drawn at zoom ``z`` (km², Web Mercator scale): about four pixels."""
    if z >= 8:
        return 0.0
    return 4 * (pixel_m(z) / 1000) ** 2


@dataclass(frozen=True)
class TileLayer:
    """A collection as a tile layer: its source SQL and the attributes per zoom band."""

    id: str
    source: str  # a fixed FROM clause with columns id, geom (4326) and the attributes
    attributes: tuple[str, ...]
    low_zoom_attributes: tuple[str, ...]
    area_column: str | None = None  # for thinning at low zooms
    integer_id: bool = True  # MVT feature ids must be integers


LAYERS: dict[str, TileLayer] = {
    "licences": TileLayer(
        id="licences",
        source=(
            "(SELECT v.licence_id AS id, v.licence_no, v.licence_type, "
            "array_to_string(v.minerals, '; ') AS minerals, p.name AS holder, "
            "v.province_code, v.status, round(v.area_km2::numeric, 3)::float8 AS area_km2, "
            "v.granted_on::text AS granted_on, v.expires_on::text AS expires_on, v.geom "
            "FROM licence_versions v JOIN parties p ON p.id = v.holder_id "
            "WHERE v.valid_to IS NULL) AS src"
        ),
        attributes=(
            "licence_no",
            "licence_type",
            "minerals",
            "holder",
            "province_code",
            "status",
            "area_km2",
            "granted_on",
            "expires_on",
        ),
        low_zoom_attributes=("status", "licence_type"),
        area_column="area_km2",
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


def layer(collection_id: str) -> TileLayer:
    found = LAYERS.get(collection_id)
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


def _sql(lay: TileLayer, z: int, kind: str) -> Any:
    attrs = lay.attributes if z >= 8 else lay.low_zoom_attributes
    cols = "".join(f", src.{a}" for a in attrs)  # fixed names from LAYERS, never user input
    thin = (
        f" AND src.{lay.area_column} >= :min_area" if lay.area_column is not None and z < 8 else ""
    )
    # Simplify to a quarter pixel below z12; higher zooms get full resolution.
    geom_3857 = (
        "ST_SimplifyPreserveTopology(ST_Transform(src.geom, 3857), :tol)"
        if z < 12
        else "ST_Transform(src.geom, 3857)"
    )
    where = f"src.geom && b.env4326{thin}"
    id_col = "src.id, " if lay.integer_id else ""
    id_arg = ", 'id'" if lay.integer_id else ""
    if kind == "mvt":
        return text(
            f"""
            WITH b AS (
                SELECT ST_TileEnvelope(:z, :x, :y) AS env,
                       ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326) AS env4326
            ), t AS (
                SELECT {id_col}ST_AsMVTGeom({geom_3857}, b.env, {EXTENT}, {BUFFER}, true) AS geom
                       {cols}
                FROM {lay.source}, b
                WHERE {where}
            )
            SELECT ST_AsMVT(t.*, :layer, {EXTENT}, 'geom'{id_arg}) FROM t WHERE t.geom IS NOT NULL
            """  # noqa: S608 - names and numbers are constants of this module
        )
    props = ", ".join(f"'{a}', src.{a}" for a in attrs)
    return text(
        f"""
        WITH b AS (
            SELECT ST_TileEnvelope(:z, :x, :y, margin => :margin) AS env,
                   ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326) AS env4326
        ), t AS (
            SELECT src.id,
                   ST_ForcePolygonCCW(
                       ST_Transform(ST_Intersection({geom_3857}, b.env), 4326)) AS g,
                   json_build_object({props}) AS props
            FROM {lay.source}, b
            WHERE {where}
        )
        SELECT json_build_object('type', 'FeatureCollection', 'features',
                   coalesce(json_agg(json_build_object('type', 'Feature', 'id', t.id,
                       'geometry', ST_AsGeoJSON(t.g, 7)::json, 'properties', t.props)
                       ORDER BY t.id), '[]'::json))::text
        FROM t WHERE NOT ST_IsEmpty(t.g)
        """  # noqa: S608
    )


def tile(conn: Connection, collection_id: str, z: int, x: int, y: int, kind: str = "mvt") -> Any:
    """One tile: MVT bytes (possibly empty) or GeoJSON text, made by PostGIS.

    GeoJSON tiles are clipped to the tile plus a small buffer, simplified to the
    zoom's resolution, in WGS 84 lon/lat (RFC 7946).
    """
    check_tile(z, x, y)
    lay = layer(collection_id)
    params = {
        "z": z,
        "x": x,
        "y": y,
        "margin": BUFFER / EXTENT,
        "tol": pixel_m(z) / 4,
        "min_area": min_area_km2(z),
        "layer": lay.id,
    }
    result = conn.execute(_sql(lay, z, kind), params).scalar()
    if kind == "mvt":
        return bytes(result) if result is not None else b""
    return result
