"""The overlap and encumbrance engine: what already holds a piece of ground.

A candidate conflicts with every live exclusive title, every earlier-ranked
pending exclusive application and every reserved area whose overlap with it is
larger than the tolerance (default 100 m²). Overlaps at or below the tolerance,
shared edges and corners included, are reported as ``touching``. Exclusivity
comes from the licence-type rules of the other licence's province: a
non-exclusive licence (a reconnaissance licence) never blocks ground.

Areas are geodesic (PostGIS ``geography`` on the WGS 84 ellipsoid) of the
planar lon/lat intersection, the same shapes the register stores. A shape
wholly inside another is found (``ST_Intersects`` plus an area, never
``ST_Overlaps``, which misses containment).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import shapely
from sqlalchemy import Connection, text

from cadastre.domain.provinces import PROVINCES
from cadastre.errors import Conflict
from cadastre.rules import RuleBook

TIE_BREAKS = ("ballot", "auction", "committee")

_HITS_SQL = text(
    """
    WITH cand AS (SELECT ST_GeomFromEWKB(decode(:wkb, 'hex')) AS g)
    SELECT 'licence' AS source, l.id, l.licence_no AS ref, p.name AS holder, l.status,
           l.licence_type AS type, l.province_code, l.received_at, l.area_km2 AS other_km2,
           ST_Area(x.ig::geography) AS m2, ST_AsGeoJSON(x.ig, 7) AS geojson,
           encode(ST_AsEWKB(x.ig), 'hex') AS ewkb
    FROM cand c
    JOIN licences l ON l.geom && c.g AND ST_Intersects(l.geom, c.g)
    JOIN parties p ON p.id = l.holder_id
    -- A shape wholly inside the candidate is its own overlap: no intersection to compute.
    CROSS JOIN LATERAL (
        SELECT CASE WHEN ST_Contains(c.g, l.geom) THEN l.geom
                    ELSE ST_CollectionExtract(ST_Intersection(l.geom, c.g), 3) END AS ig
    ) x
    WHERE l.status IN ('granted', 'applied')
      AND (CAST(:exclusive AS jsonb) -> l.province_code ->> l.licence_type)::boolean
      AND l.id IS DISTINCT FROM :exclude
      -- Applications held back from the public register: only for those who see them.
      AND (l.published OR CAST(:scope AS text) = '*' OR l.province_code = CAST(:scope AS text))
    UNION ALL
    SELECT 'reserved_area', r.id, r.name, NULL, NULL, r.kind, r.province_code, NULL,
           r.area_km2, ST_Area(x.ig::geography), ST_AsGeoJSON(x.ig, 7),
           encode(ST_AsEWKB(x.ig), 'hex')
    FROM cand c
    JOIN reserved_areas r ON r.geom && c.g AND ST_Intersects(r.geom, c.g)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN ST_Contains(c.g, r.geom) THEN r.geom
                    ELSE ST_CollectionExtract(ST_Intersection(r.geom, c.g), 3) END AS ig
    ) x
    ORDER BY 1, 2
    """
)

_AVAILABLE_SQL = text(
    """
    WITH cand AS (SELECT ST_GeomFromEWKB(decode(:wkb, 'hex')) AS g),
    taken AS (
        SELECT ST_Union(ST_GeomFromEWKB(decode(h, 'hex'))) AS g
        FROM unnest(CAST(:taken AS text[])) AS h
    ),
    free AS (
        SELECT ST_CollectionExtract(
                   CASE WHEN t.g IS NULL THEN c.g ELSE ST_Difference(c.g, t.g) END, 3) AS g
        FROM cand c, taken t
    )
    SELECT CASE WHEN NOT ST_IsEmpty(g) THEN ST_AsGeoJSON(ST_Multi(g), 7) END,
           coalesce(ST_Area(g::geography), 0),
           ST_Area((SELECT g FROM cand)::geography)
    FROM free
    """
)


@dataclass(frozen=True)
class Encumbrance:
    """Something that holds part of the candidate's ground."""

    kind: str  # title, application or reserved_area
    id: int
    ref: str  # licence number or reserved area name
    holder: str | None
    status: str | None
    type: str  # licence type or reserved-area kind
    province_code: str | None
    overlap_km2: float
    overlap_pct_of_candidate: float
    overlap_pct_of_other: float
    geometry: dict[str, Any]
    received_at: datetime | None = None
    simultaneous: bool = False
    ewkb: str = field(default="", repr=False)

    def to_dict(self) -> dict[str, Any]:
        body = {
            "kind": self.kind,
            "id": self.id,
            "licence_no" if self.kind != "reserved_area" else "name": self.ref,
            "holder": self.holder,
            "status": self.status,
            "type": self.type,
            "province_code": self.province_code,
            "overlap_km2": round(self.overlap_km2, 6),
            "overlap_pct_of_candidate": round(self.overlap_pct_of_candidate, 4),
            "overlap_pct_of_other": round(self.overlap_pct_of_other, 4),
            "geometry": self.geometry,
        }
        if self.kind == "application":
            body["received_at"] = self.received_at.isoformat() if self.received_at else None
            body["simultaneous"] = self.simultaneous
        return body


@dataclass
class OverlapReport:
    """The answer of :func:`check`: conflicts, touching neighbours and the free ground."""

    area_km2: float
    conflicts: list[Encumbrance]
    touching: list[Encumbrance]
    available_geometry: dict[str, Any] | None
    available_km2: float
    tie_break: str


def exclusivity(rules: RuleBook) -> dict[str, dict[str, bool]]:
    """``{province: {licence_type: exclusive}}``; an unknown rule is not enforced."""
    return {
        code: {key: bool(rules.rule(key, code).exclusive) for key in rules.types}
        for code in PROVINCES
    }


def _ewkb(geometry: Any) -> str:
    return str(shapely.to_wkb(shapely.set_srid(geometry, 4326), hex=True, include_srid=True))


def check(
    conn: Connection,
    geometry: Any,
    *,
    rules: RuleBook,
    received_at: datetime,
    timezone: str,
    tolerance_m2: float = 100.0,
    tie_break: str = "ballot",
    exclude: int | None = None,
    unpublished: str | None = "*",
) -> OverlapReport:
    """Everything that holds the ground of ``geometry`` (MultiPolygon, EPSG:4326).

    Pending applications rank by receipt time: one received earlier conflicts;
    one received on the same calendar date (in ``timezone``) is simultaneous
    (Balochistan Mineral Rules 2002 r.10) and conflicts with ``simultaneous``
    set, to be resolved by ``tie_break``; one received later ranks behind the
    candidate and is not reported. ``exclude`` leaves out the candidate itself
    when it is already in the register. ``unpublished``: the applications held back
    from the public register that count (``"*"`` all, the register's own checks; a
    province code or None for a reader who sees only those or none).
    """
    wkb = _ewkb(geometry)
    rows = conn.execute(
        _HITS_SQL,
        {
            "wkb": wkb,
            "exclusive": json.dumps(exclusivity(rules)),
            "exclude": exclude,
            "scope": unpublished,
        },
    ).mappings()
    tz = ZoneInfo(timezone)
    day = received_at.astimezone(tz).date()
    ranked: list[tuple[str, bool, Any]] = []
    for r in rows:
        kind = (
            "reserved_area"
            if r["source"] == "reserved_area"
            else ("title" if r["status"] == "granted" else "application")
        )
        simultaneous = False
        if kind == "application":
            their_day = r["received_at"].astimezone(tz).date()
            if r["received_at"] >= received_at and their_day != day:
                continue  # ranks behind the candidate
            simultaneous = their_day == day
        ranked.append((kind, simultaneous, r))
    taken = [r["ewkb"] for _, _, r in ranked if r["m2"] > tolerance_m2]
    free_json, free_m2, cand_m2 = conn.execute(_AVAILABLE_SQL, {"wkb": wkb, "taken": taken}).one()
    conflicts: list[Encumbrance] = []
    touching: list[Encumbrance] = []
    for kind, simultaneous, r in ranked:
        other_m2 = (r["other_km2"] or 0.0) * 1e6
        enc = Encumbrance(
            kind=kind,
            id=r["id"],
            ref=r["ref"],
            holder=r["holder"],
            status=r["status"],
            type=r["type"],
            province_code=r["province_code"],
            overlap_km2=r["m2"] / 1e6,
            overlap_pct_of_candidate=100 * r["m2"] / cand_m2 if cand_m2 else 0.0,
            overlap_pct_of_other=100 * r["m2"] / other_m2 if other_m2 else 0.0,
            geometry=json.loads(r["geojson"]),
            received_at=r["received_at"],
            simultaneous=simultaneous,
            ewkb=r["ewkb"],
        )
        (conflicts if r["m2"] > tolerance_m2 else touching).append(enc)
    return OverlapReport(
        area_km2=cand_m2 / 1e6,
        conflicts=conflicts,
        touching=touching,
        available_geometry=json.loads(free_json) if free_json else None,
        available_km2=free_m2 / 1e6,
        tie_break=tie_break,
    )


def record_conflicts(conn: Connection, licence_id: int, conflicts: Sequence[Encumbrance]) -> None:
    """Keep what the check found on the application, in the same transaction."""
    if not conflicts:
        return
    conn.execute(
        text(
            "INSERT INTO licence_conflicts (licence_id, other_licence_id, reserved_area_id, "
            "kind, overlap_km2, simultaneous) VALUES (:lid, :oid, :rid, :kind, :km2, :sim)"
        ),
        [
            {
                "lid": licence_id,
                "oid": None if c.kind == "reserved_area" else c.id,
                "rid": c.id if c.kind == "reserved_area" else None,
                "kind": c.kind,
                "km2": c.overlap_km2,
                "sim": c.simultaneous,
            }
            for c in conflicts
        ],
    )


def lock_province_grants(conn: Connection, province_code: str) -> None:
    """Serialise grants within a province until the transaction ends.

    Two officers granting overlapping applications at the same moment: the
    second waits here, then sees the first one's title and is refused.
    """
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('cadastre.grant'), hashtext(:p))"),
        {"p": province_code},
    )


def check_grant(
    conn: Connection, licence_id: int, *, rules: RuleBook, tolerance_m2: float = 100.0
) -> None:
    """Refuse a grant over ground held by an exclusive title or a reserved area.

    Raises :class:`Conflict` naming the title(s) or area(s) and the overlap.
    """
    row = conn.execute(
        text("SELECT geom, province_code FROM licences WHERE id = :id"), {"id": licence_id}
    ).one()
    lock_province_grants(conn, row.province_code)
    winners = conn.execute(
        text(
            """
            SELECT o.id, o.licence_no, ST_Area(ST_Intersection(o.geom, l.geom)::geography) AS m2
            FROM licences l
            JOIN licences o ON o.geom && l.geom AND ST_Intersects(o.geom, l.geom)
            WHERE l.id = :id AND o.id <> l.id AND o.status = 'granted'
              AND (CAST(:exclusive AS jsonb) -> o.province_code ->> o.licence_type)::boolean
            ORDER BY o.id
            """
        ),
        {"id": licence_id, "exclusive": json.dumps(exclusivity(rules))},
    ).all()
    taken = [w for w in winners if w.m2 > tolerance_m2]
    if taken:
        names = ", ".join(f"{w.licence_no} ({w.m2 / 1e6:.6f} km²)" for w in taken)
        raise Conflict(
            f"the ground is already granted to exclusive title {names}",
            field="action",
            where={
                "granted_to": [
                    {"id": w.id, "licence_no": w.licence_no, "overlap_km2": w.m2 / 1e6}
                    for w in taken
                ]
            },
        )
    closed = conn.execute(
        text(
            """
            SELECT r.id, r.name, r.kind, ST_Area(ST_Intersection(r.geom, l.geom)::geography) AS m2
            FROM licences l
            JOIN reserved_areas r ON r.geom && l.geom AND ST_Intersects(r.geom, l.geom)
            WHERE l.id = :id ORDER BY r.id
            """
        ),
        {"id": licence_id},
    ).all()
    closed = [r for r in closed if r.m2 > tolerance_m2]
    if closed:
        names = ", ".join(f"{r.name} ({r.kind}, {r.m2 / 1e6:.6f} km²)" for r in closed)
        raise Conflict(
            f"the ground lies in a reserved area: {names}",
            field="action",
            where={
                "reserved_areas": [
                    {"id": r.id, "name": r.name, "kind": r.kind, "overlap_km2": r.m2 / 1e6}
                    for r in closed
                ]
            },
        )


@dataclass(frozen=True)
class AuditRow:
    """One overlap found by the audit."""

    kind: str  # title_title or title_reserved
    a_id: int
    a_ref: str
    b_id: int
    b_ref: str
    province_code: str
    overlap_km2: float
    geojson: str


_AUDIT_SQL = text(
    """
    SELECT 'title_title' AS kind, a.id AS a_id, a.licence_no AS a_ref, b.id AS b_id,
           b.licence_no AS b_ref, a.province_code, x.m2, ST_AsGeoJSON(x.ig, 7) AS geojson
    FROM licences a
    JOIN licences b ON b.id > a.id AND a.geom && b.geom AND ST_Intersects(a.geom, b.geom)
    CROSS JOIN LATERAL (
        SELECT ig, ST_Area(ig::geography) AS m2
        FROM (SELECT ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3) AS ig) i
    ) x
    WHERE a.status = 'granted' AND b.status = 'granted'
      AND (CAST(:exclusive AS jsonb) -> a.province_code ->> a.licence_type)::boolean
      AND (CAST(:exclusive AS jsonb) -> b.province_code ->> b.licence_type)::boolean
      AND (CAST(:province AS text) IS NULL OR a.province_code = :province
           OR b.province_code = :province)
      AND x.m2 > :tol
    UNION ALL
    SELECT 'title_reserved', a.id, a.licence_no, r.id, r.name, a.province_code, x.m2,
           ST_AsGeoJSON(x.ig, 7)
    FROM licences a
    JOIN reserved_areas r ON a.geom && r.geom AND ST_Intersects(a.geom, r.geom)
    CROSS JOIN LATERAL (
        SELECT ig, ST_Area(ig::geography) AS m2
        FROM (SELECT ST_CollectionExtract(ST_Intersection(a.geom, r.geom), 3) AS ig) i
    ) x
    WHERE a.status = 'granted'
      AND (CAST(:province AS text) IS NULL OR a.province_code = :province)
      AND x.m2 > :tol
    """
)


def audit(
    conn: Connection,
    *,
    rules: RuleBook,
    province: str | None = None,
    tolerance_m2: float = 100.0,
    batch: int = 500,
) -> Iterator[AuditRow]:
    """Every pair of overlapping live exclusive titles, and every title over a reserved area.

    Rows stream from a server-side cursor as PostGIS finds them (unordered, so
    the first row leaves before the last is found), in constant memory.
    """
    # Streaming is an option of this statement only, not of the caller's connection.
    result = conn.execute(
        _AUDIT_SQL.execution_options(stream_results=True, yield_per=batch),
        {"exclusive": json.dumps(exclusivity(rules)), "province": province, "tol": tolerance_m2},
    )
    for r in result:
        yield AuditRow(
            r.kind, r.a_id, r.a_ref, r.b_id, r.b_ref, r.province_code, r.m2 / 1e6, r.geojson
        )
