"""Reserved and closed areas: protected, forest, strategic, religious, auction-reserved ground."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from sqlalchemy import Connection, func, insert, text

from cadastre.db.generation import lock_for_write
from cadastre.db.tables import RESERVED_KINDS, reserved_areas
from cadastre.domain.provinces import province_code
from cadastre.errors import InvalidInput


def load_reserved_areas(conn: Connection, features: Iterable[Mapping[str, Any]]) -> int:
    """Add reserved areas from GeoJSON Features (EPSG:4326); returns how many."""
    lock_for_write(conn)
    rows = []
    for i, feature in enumerate(features):
        props = feature.get("properties") or {}
        kind = props.get("kind")
        if kind not in RESERVED_KINDS:
            raise InvalidInput(
                f"feature {i}: kind {kind!r} is not one of {', '.join(RESERVED_KINDS)}",
                field="kind",
            )
        designated = props.get("designated_on")
        rows.append(
            {
                "name": props["name"],
                "kind": kind,
                "province_code": province_code(props["province"])
                if props.get("province")
                else None,
                "geom": func.ST_Multi(func.ST_GeomFromGeoJSON(json.dumps(feature["geometry"]))),
                "source": props.get("source") or "unknown",
                "designated_on": date.fromisoformat(designated) if designated else None,
                "remarks": props.get("remarks"),
            }
        )
    for row in rows:
        conn.execute(insert(reserved_areas).values(**row))
    return len(rows)


def reserved_areas_geojson(conn: Connection) -> str:
    """All reserved areas as a GeoJSON FeatureCollection (text built by PostGIS)."""
    return str(
        conn.execute(
            text(
                """
                SELECT json_build_object('type', 'FeatureCollection', 'features',
                    coalesce(json_agg(json_build_object(
                        'type', 'Feature', 'id', r.id,
                        'geometry', ST_AsGeoJSON(r.geom, 7)::json,
                        'properties', json_build_object(
                            'name', r.name, 'kind', r.kind, 'province_code', r.province_code,
                            'area_km2', round(r.area_km2::numeric, 6), 'source', r.source,
                            'designated_on', r.designated_on, 'remarks', r.remarks))
                        ORDER BY r.id), '[]'::json))::text
                FROM reserved_areas r
                """
            )
        ).scalar_one()
    )
