"""Provinces and territories: loading their polygons and answering which one holds a shape."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert

from cadastre.db.generation import lock_for_write
from cadastre.db.tables import jurisdiction_parts, jurisdictions
from cadastre.domain.provinces import PROVINCES, province_code

TERRITORIES = {"PK-GB", "PK-JK", "PK-IS"}


def load_jurisdictions(
    conn: Connection, features: Iterable[Mapping[str, Any]], *, source: str
) -> int:
    """Replace the jurisdictions with ``features`` (GeoJSON Features in EPSG:4326).

    Each feature needs ``properties.province`` (name) or ``properties.province_iso``.
    The subdivided parts used by the containment checks are rebuilt too.
    Returns the number of jurisdictions loaded.
    """
    lock_for_write(conn)
    rows = []
    for feature in features:
        props = feature.get("properties") or {}
        code = province_code(str(props.get("province_iso") or props.get("province")))
        rows.append(
            {
                "code": code,
                "name": PROVINCES[code],
                "kind": "territory" if code in TERRITORIES else "province",
                "geom": func.ST_Multi(func.ST_GeomFromGeoJSON(json.dumps(feature["geometry"]))),
                "source": source,
            }
        )
    conn.execute(delete(jurisdiction_parts))
    for row in rows:
        stmt = (
            insert(jurisdictions)
            .values(**row)
            .on_conflict_do_update(
                index_elements=["code"],
                set_={"geom": row["geom"], "name": row["name"], "source": row["source"]},
            )
        )
        conn.execute(stmt)
    conn.execute(
        text(
            "INSERT INTO jurisdiction_parts (code, geom) "
            "SELECT code, ST_Subdivide(geom, 256) FROM jurisdictions"
        )
    )
    conn.execute(text("ANALYZE jurisdiction_parts"))
    return len(rows)


def list_jurisdictions(conn: Connection) -> list[dict[str, Any]]:
    """Every jurisdiction with its geodesic area (km²), without geometry."""
    result = conn.execute(
        select(
            jurisdictions.c.code,
            jurisdictions.c.name,
            jurisdictions.c.kind,
            jurisdictions.c.area_km2,
            jurisdictions.c.source,
        ).order_by(jurisdictions.c.code)
    )
    return [dict(r._mapping) for r in result]
