"""The area-of-interest report: what is in this ground, in one answer.

For an area of interest (a MultiPolygon in EPSG:4326) the report gives

* its geodesic area;
* every licence and application of the current register whose ground it
  overlaps by more than the tolerance, with the overlap's geodesic area and its
  share of the area of interest and of the licence (pieces at or below the
  tolerance, shared edges included, are listed as ``touching``);
* the free ground: the area of interest minus every live exclusive title,
  every pending exclusive application and every reserved area (the overlap
  engine's rule, :mod:`cadastre.db.overlaps`), as geometry and area;
* per vector survey layer, what lies in it: points counted, lines measured
  (km), polygons measured (km² and share of the area of interest), grouped by
  the layer's summary attribute (see :data:`GROUP_ATTRIBUTES`);
* per raster survey layer, the statistics of the pixels it covers (given by a
  caller-supplied function, so this module does not read rasters itself).

Survey layers are those the caller may read (:mod:`cadastre.survey.access`).

Areas are geodesic (PostGIS ``geography``, WGS 84) of the planar lon/lat
intersections, the shapes the register stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import shapely
from sqlalchemy import Connection, text

from cadastre.auth import PUBLIC, Principal
from cadastre.db import overlaps
from cadastre.rules import RuleBook

#: Attributes a vector layer's features are grouped by, first present wins;
#: values separated by ``;`` count once each (``"Copper; Gold"``).
GROUP_ATTRIBUTES = (
    "commodities",
    "commodity",
    "mineral",
    "minerals",
    "unit",
    "lithology",
    "element",
    "slip_type",
    "type",
    "kind",
)

#: Raster statistics for one raster layer over the area of interest: given the
#: catalogue row (a mapping) and the area (shapely, EPSG:4326).
RasterStats = Callable[[Any, Any], dict[str, Any]]

_LICENCES_SQL = text(
    """
    WITH a AS (SELECT ST_GeomFromEWKB(decode(:wkb, 'hex')) AS g)
    SELECT l.id, l.licence_no, l.licence_type, l.status, p.name AS holder, l.province_code,
           l.minerals, l.area_km2, l.granted_on, l.expires_on,
           ST_Area(x.ig::geography) AS m2, ST_AsGeoJSON(ST_ForcePolygonCCW(x.ig), 7) AS piece
    FROM a
    JOIN licences l ON l.geom && a.g AND ST_Intersects(l.geom, a.g)
        AND (l.published OR CAST(:scope AS text) = '*' OR l.province_code = CAST(:scope AS text))
    JOIN parties p ON p.id = l.holder_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN ST_Contains(a.g, l.geom) THEN l.geom
                    ELSE ST_CollectionExtract(ST_Intersection(l.geom, a.g), 3) END AS ig
    ) AS x
    ORDER BY m2 DESC, l.id
    """
)

_LAYERS_SQL = text(
    """
    WITH a AS (SELECT ST_GeomFromEWKB(decode(:wkb, 'hex')) AS g)
    SELECT s.id, s.slug, s.name, s.kind, s.storage, s.synthetic, s.source, s.licence,
           s.geometry_type, s.attributes, s.raster
    FROM survey_layers s, a
    WHERE (s.extent IS NULL OR s.extent && a.g) AND (s.public OR :all_layers)
    ORDER BY s.storage DESC, s.slug
    """
)

# What a vector layer holds in the area, summed by PostGIS: the first row (value NULL)
# is the whole layer (features, amount, highest dimension), the others one per value
# of the grouping attribute. A feature's amount is how much of it lies inside
# (polygons: m², lines: m, points: 1); one that only touches the boundary is left
# out. A value is split at ";" (or a JSON list taken element by element), each part
# counting once; a feature without one counts under "(none)".
_FEATURES_SQL = text(
    """
    WITH a AS (SELECT ST_GeomFromEWKB(decode(:wkb, 'hex')) AS g),
    hit AS (
        SELECT f.properties -> CAST(:attr AS text) AS p, ST_Dimension(f.geom) AS dim,
               CASE ST_Dimension(f.geom)
                   WHEN 0 THEN 1.0
                   WHEN 1 THEN ST_Length(ST_CollectionExtract(ST_Intersection(f.geom, a.g), 2)
                                         ::geography)
                   ELSE ST_Area(CASE WHEN ST_Contains(a.g, f.geom) THEN f.geom
                                     ELSE ST_CollectionExtract(ST_Intersection(f.geom, a.g), 3)
                                END::geography)
               END AS amount
        FROM survey_features f, a
        WHERE f.layer_id = :layer AND f.geom && a.g AND ST_Intersects(f.geom, a.g)
    ),
    kept AS (SELECT * FROM hit WHERE dim = 0 OR amount > 0),
    parts AS (
        SELECT k.amount, v.value
        FROM kept k
        CROSS JOIN LATERAL (
            SELECT coalesce(array_agg(t) FILTER (WHERE t <> ''), ARRAY['(none)']) AS vals
            FROM (
                SELECT trim(x) AS t FROM jsonb_array_elements_text(
                    CASE WHEN jsonb_typeof(k.p) = 'array' THEN k.p ELSE '[]'::jsonb END) AS x
                UNION ALL
                SELECT trim(x) FROM regexp_split_to_table(
                    CASE WHEN jsonb_typeof(k.p) IN ('string', 'number', 'boolean')
                         THEN k.p #>> '{}' ELSE '' END, ';') AS x
            ) AS split
        ) AS g
        CROSS JOIN LATERAL unnest(g.vals) AS v(value)
        WHERE CAST(:attr AS text) IS NOT NULL
    )
    SELECT NULL AS value, count(*) AS n, coalesce(sum(amount), 0) AS amount, max(dim) AS dim
    FROM kept
    UNION ALL
    SELECT value, count(*), sum(amount), NULL FROM parts GROUP BY value
    """
)


@dataclass
class AoiReport:
    """What :func:`report` found; :meth:`to_dict` is the JSON answer."""

    area_km2: float
    licences: list[dict[str, Any]]
    touching: list[dict[str, Any]]
    reserved_areas: list[dict[str, Any]]
    free_geometry: dict[str, Any] | None
    free_km2: float
    vector_layers: list[dict[str, Any]]
    raster_layers: list[dict[str, Any]]
    aoi_geometry: dict[str, Any]
    pieces: dict[int, dict[str, Any]] = field(default_factory=dict)  # licence id -> overlap
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for lic in self.licences:
            by_status[lic["status"]] = by_status.get(lic["status"], 0) + 1
        return {
            "generated_at": self.generated_at.isoformat(),
            "area_km2": round(self.area_km2, 6),
            "licences": self.licences,
            "licence_count_by_status": dict(sorted(by_status.items())),
            "touching": self.touching,
            "reserved_areas": self.reserved_areas,
            "free_ground": {
                "area_km2": round(self.free_km2, 6),
                "share_pct": round(100 * self.free_km2 / self.area_km2, 4)
                if self.area_km2
                else 0.0,
                "geometry": self.free_geometry,
            },
            "survey": {"vector": self.vector_layers, "raster": self.raster_layers},
        }


def _group_attribute(attributes: Any) -> str | None:
    names = {str(a.get("name")) for a in attributes or [] if isinstance(a, dict)}
    lowered = {n.lower(): n for n in names}
    for candidate in GROUP_ATTRIBUTES:
        if candidate in lowered:
            return lowered[candidate]
    return None


def _layer_entry(row: Any) -> dict[str, Any]:
    """What the report says of any survey layer: which it is and where it comes from."""
    return {
        "slug": row["slug"],
        "name": row["name"],
        "kind": row["kind"],
        "synthetic": bool(row["synthetic"]),
        "source": row["source"],
        "licence": row["licence"],
    }


def _vector_summary(conn: Connection, wkb: str, row: Any, aoi_m2: float) -> dict[str, Any]:
    group = _group_attribute(row["attributes"])
    rows = conn.execute(_FEATURES_SQL, {"wkb": wkb, "layer": row["id"], "attr": group}).all()
    whole = next(r for r in rows if r.value is None)
    count, amount, dim = int(whole.n), float(whole.amount), whole.dim
    totals = {r.value: float(r.amount) for r in rows if r.value is not None}
    out: dict[str, Any] = {
        **_layer_entry(row),
        "geometry_type": row["geometry_type"],
        "features": count,
        "grouped_by": group,
    }
    groups: list[dict[str, Any]]
    if dim == 2:
        out["area_km2"] = round(amount / 1e6, 6)
        out["share_pct"] = round(100 * amount / aoi_m2, 4) if aoi_m2 else 0.0
        groups = [
            {"value": k, "area_km2": round(v / 1e6, 6), "share_pct": round(100 * v / aoi_m2, 4)}
            for k, v in totals.items()
        ]
        groups.sort(key=lambda g: (-g["area_km2"], g["value"]))
    elif dim == 1:
        out["length_km"] = round(amount / 1e3, 6)
        groups = [{"value": k, "length_km": round(v / 1e3, 6)} for k, v in totals.items()]
        groups.sort(key=lambda g: (-g["length_km"], g["value"]))
    else:
        groups = [{"value": k, "count": int(v)} for k, v in totals.items()]
        groups.sort(key=lambda g: (-g["count"], g["value"]))
    out["groups"] = groups if group is not None else []
    return out


def report(
    conn: Connection,
    geometry: Any,
    *,
    rules: RuleBook,
    timezone: str,
    tolerance_m2: float = 100.0,
    raster_stats: RasterStats | None = None,
    who: Principal = PUBLIC,
) -> AoiReport:
    """The report for ``geometry`` (a shapely MultiPolygon in EPSG:4326), as ``who`` may see
    it: the survey layers they may read, and of the applications held back from the public
    register only those they see."""
    now = datetime.now(UTC)
    ground = overlaps.check(
        conn,
        geometry,
        rules=rules,
        received_at=now,
        timezone=timezone,
        tolerance_m2=tolerance_m2,
        unpublished=who.unpublished_scope,
    )
    aoi_m2 = ground.area_km2 * 1e6
    wkb = str(shapely.to_wkb(shapely.set_srid(geometry, 4326), hex=True, include_srid=True))
    exclusive = overlaps.exclusivity(rules)
    licences: list[dict[str, Any]] = []
    touching: list[dict[str, Any]] = []
    pieces: dict[int, dict[str, Any]] = {}
    for r in conn.execute(_LICENCES_SQL, {"wkb": wkb, "scope": who.unpublished_scope}).mappings():
        entry = {
            "id": r["id"],
            "licence_no": r["licence_no"],
            "licence_type": r["licence_type"],
            "status": r["status"],
            "holder": r["holder"],
            "province_code": r["province_code"],
            "minerals": list(r["minerals"] or []),
            "area_km2": round(r["area_km2"], 6),
            "granted_on": r["granted_on"].isoformat() if r["granted_on"] else None,
            "expires_on": r["expires_on"].isoformat() if r["expires_on"] else None,
            "exclusive": bool(exclusive.get(r["province_code"], {}).get(r["licence_type"])),
            "overlap_km2": round(r["m2"] / 1e6, 6),
            "share_of_aoi_pct": round(100 * r["m2"] / aoi_m2, 4) if aoi_m2 else 0.0,
            "share_of_licence_pct": round(100 * r["m2"] / (r["area_km2"] * 1e6), 4)
            if r["area_km2"]
            else 0.0,
        }
        (licences if r["m2"] > tolerance_m2 else touching).append(entry)
        if r["m2"] > tolerance_m2:
            pieces[r["id"]] = json.loads(r["piece"])
    reserved = [
        {
            "id": e.id,
            "name": e.ref,
            "kind": e.type,
            "province_code": e.province_code,
            "overlap_km2": round(e.overlap_km2, 6),
            "share_of_aoi_pct": round(e.overlap_pct_of_candidate, 4),
        }
        for e in ground.conflicts
        if e.kind == "reserved_area"
    ]
    vectors: list[dict[str, Any]] = []
    rasters: list[dict[str, Any]] = []
    every_layer = who.reads_restricted_layers
    for row in conn.execute(_LAYERS_SQL, {"wkb": wkb, "all_layers": every_layer}).mappings():
        if row["storage"] == "vector":
            vectors.append(_vector_summary(conn, wkb, row, aoi_m2))
        elif raster_stats is not None:
            entry = _layer_entry(row)
            entry.update(raster_stats(row, geometry))
            rasters.append(entry)
    return AoiReport(
        area_km2=ground.area_km2,
        licences=licences,
        touching=touching,
        reserved_areas=reserved,
        free_geometry=ground.available_geometry,
        free_km2=ground.available_km2,
        vector_layers=vectors,
        raster_layers=rasters,
        aoi_geometry=json.loads(shapely.to_geojson(geometry)),
        pieces=pieces,
        generated_at=now,
    )


def geojson(rep: AoiReport) -> dict[str, Any]:
    """The geometric parts as one FeatureCollection: the area, each licence's overlap and
    the free ground (``properties.part`` says which), in WGS 84 lon/lat."""
    features: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "id": "aoi",
            "geometry": rep.aoi_geometry,
            "properties": {"part": "aoi", "area_km2": round(rep.area_km2, 6)},
        }
    ]
    for lic in rep.licences:
        features.append(
            {
                "type": "Feature",
                "id": f"licence/{lic['id']}",
                "geometry": rep.pieces[lic["id"]],
                "properties": {"part": "licence", **lic},
            }
        )
    if rep.free_geometry is not None:
        features.append(
            {
                "type": "Feature",
                "id": "free_ground",
                "geometry": rep.free_geometry,
                "properties": {"part": "free_ground", "area_km2": round(rep.free_km2, 6)},
            }
        )
    return {"type": "FeatureCollection", "features": features}
