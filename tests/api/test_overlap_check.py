"""POST /overlaps/check and the conflicts recorded by POST /licences.

Other licences are entered on the test's connection with ``register_licences``
(action "import", which runs no overlap check, so any arrangement of titles can
exist), reserved areas with ``load_reserved_areas``; everything is rolled back.

Every area is checked against an independent calculation: shapely
intersection/difference of the shapes in lon/lat, measured on the WGS 84
ellipsoid with pyproj's ``Geod.geometry_area_perimeter``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pyproj
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape
from shapely.geometry.polygon import orient
from sqlalchemy import Connection, text

from cadastre.db.licences import Candidate, Holder, Shape, register_licences
from cadastre.db.reserved import load_reserved_areas
from cadastre.domain.geometry import intake
from cadastre.rules import RuleBook

GEOD = pyproj.Geod(ellps="WGS84")
REL = 1e-3  # 0.1 %

# Well inside the provinces (checked against the sample province polygons).
BA = (66.3, 29.3)  # Balochistan
PB = (72.5, 31.0)  # Punjab
D = 0.05  # side of the test squares, degrees


# ------------------------------------------------------------------ geometry


def km2(geom: Any) -> float:
    """Geodesic area (WGS 84) of a shapely (Multi)Polygon, summed over parts."""
    if geom.is_empty:
        return 0.0
    parts = geom.geoms if hasattr(geom, "geoms") else [geom]
    total = 0.0
    for p in parts:
        if p.geom_type != "Polygon" or p.is_empty:
            continue
        area, _ = GEOD.geometry_area_perimeter(orient(p, sign=1.0))
        total += abs(area)
    return total / 1e6


def sq(x: float, y: float, dx: float = D, dy: float | None = None) -> Polygon:
    return box(x, y, x + dx, y + (dx if dy is None else dy))


def close(actual: float, expected: float) -> None:
    assert actual == pytest.approx(expected, rel=REL), (actual, expected)


# ------------------------------------------------------------------ register


def insert(
    conn: Connection,
    rules: RuleBook,
    geom: Any,
    *,
    status: str = "granted",
    licence_type: str = "exploration_licence",
    holder: str = "Other Holder Ltd",
    licence_no: str | None = None,
) -> int:
    """One licence in ``status``, imported (no overlap check) on the test's connection."""
    dates: dict[str, date | None] = {"granted_on": None, "expires_on": None}
    if status in ("granted", "surrendered", "cancelled"):
        dates = {"granted_on": date(2024, 1, 1), "expires_on": date(2034, 1, 1)}
    elif status == "expired":
        dates = {"granted_on": date(2019, 1, 1), "expires_on": date(2022, 1, 1)}
    cand = Candidate(
        licence_type=licence_type,
        minerals=["Copper"],
        holder=Holder(name=holder),
        shape=Shape.from_intake(intake(mapping(geom), None)),
        licence_no=licence_no,
        status=status,
        **dates,
    )
    result = register_licences(conn, [cand], rules=rules, actor="test", action="import")
    assert not result.rejected
    return result.created[0]


def reserve(conn: Connection, geom: Any, name: str = "Hingol National Park") -> int:
    load_reserved_areas(
        conn,
        [
            {
                "type": "Feature",
                "geometry": mapping(geom),
                "properties": {
                    "name": name,
                    "kind": "protected",
                    "province": "Balochistan",
                    "source": "test",
                    "designated_on": "1988-01-01",
                },
            }
        ],
    )
    return int(
        conn.execute(
            text("SELECT id FROM reserved_areas WHERE name = :n"), {"n": name}
        ).scalar_one()
    )


def check_raw(
    client: TestClient,
    geometry: Any,
    *,
    licence_type: str = "exploration_licence",
    crs: str | None = None,
    **props: Any,
) -> Any:
    body = {
        "type": "Feature",
        "geometry": geometry if isinstance(geometry, dict | str) else mapping(geometry),
        "properties": {"licence_type": licence_type, "minerals": ["Copper"], **props},
    }
    return client.post("/overlaps/check", json=body, params={"crs": crs} if crs else None)


def check(client: TestClient, geometry: Any, **kw: Any) -> dict[str, Any]:
    r = check_raw(client, geometry, **kw)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def by_id(items: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    out = {c["id"]: c for c in items}
    assert len(out) == len(items), "an item was listed twice"
    return out


def only_conflict(report: dict[str, Any], other_id: int) -> dict[str, Any]:
    assert [c["id"] for c in report["conflicts"]] == [other_id], report["conflicts"]
    return report["conflicts"][0]  # type: ignore[no-any-return]


def assert_overlap(item: dict[str, Any], cand: Any, other: Any) -> None:
    """overlap_km2 and both percentages against shapely + Geod."""
    inter = cand.intersection(other)
    expected = km2(inter)
    close(item["overlap_km2"], expected)
    close(item["overlap_pct_of_candidate"], 100 * expected / km2(cand))
    close(item["overlap_pct_of_other"], 100 * expected / km2(other))
    close(km2(shape(item["geometry"])), expected)


def assert_available(report: dict[str, Any], expected_geom: Any) -> None:
    avail = report["available"]
    assert avail["type"] == "Feature"
    close(avail["properties"]["area_km2"], km2(expected_geom))
    close(km2(shape(avail["geometry"])), km2(expected_geom))


def available_is_empty(report: dict[str, Any]) -> None:
    avail = report["available"]
    geom = avail.get("geometry")
    assert geom is None or geom.get("coordinates") in ([], None), geom
    assert avail["properties"]["area_km2"] == 0


# --------------------------------------------------------------- containment


def test_candidate_wholly_inside_a_granted_title(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    title = sq(*BA, 0.1)
    tid = insert(conn, rules, title, licence_no="BA-EL-T-1")
    cand = sq(BA[0] + 0.02, BA[1] + 0.03, 0.04)
    report = check(client, cand)
    item = only_conflict(report, tid)
    assert item["kind"] == "title"
    assert item["licence_no"] == "BA-EL-T-1"
    assert item["holder"] == "Other Holder Ltd"
    assert item["status"] == "granted"
    assert item["type"] == "exploration_licence"
    assert item["province_code"] == "PK-BA"
    assert item["overlap_pct_of_candidate"] == pytest.approx(100, rel=REL)
    assert_overlap(item, cand, title)
    close(item["overlap_km2"], km2(cand))
    available_is_empty(report)
    assert report["admissible"] is False


def test_title_wholly_inside_the_candidate(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    title = sq(BA[0] + 0.02, BA[1] + 0.03, 0.03)
    tid = insert(conn, rules, title)
    cand = sq(*BA, 0.1)
    item = only_conflict(report := check(client, cand), tid)
    assert item["overlap_pct_of_other"] == pytest.approx(100, rel=REL)
    assert_overlap(item, cand, title)
    assert_available(report, cand.difference(title))


def test_partial_overlap(client: TestClient, conn: Connection, rules: RuleBook) -> None:
    title = sq(*BA)
    tid = insert(conn, rules, title)
    cand = sq(BA[0] + 0.03, BA[1] + 0.02)
    report = check(client, cand)
    item = only_conflict(report, tid)
    assert 0 < item["overlap_pct_of_candidate"] < 100
    assert_overlap(item, cand, title)
    assert_available(report, cand.difference(title))
    close(report["candidate"]["area_km2"], km2(cand))


# --------------------------------------------------------------------- holes

OUTER = sq(*BA, 0.1)
HOLE = sq(BA[0] + 0.03, BA[1] + 0.03, 0.04)
HOLED = Polygon(OUTER.exterior.coords, [HOLE.exterior.coords])


def test_candidate_inside_the_hole_is_disjoint(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    tid = insert(conn, rules, HOLED)
    cand = sq(BA[0] + 0.04, BA[1] + 0.04, 0.02)  # strictly inside the hole
    report = check(client, cand)
    # Disjoint from the title: neither a conflict nor touching.
    assert report["conflicts"] == []
    assert tid not in by_id(report["touching"])
    assert report["touching"] == []
    assert report["admissible"] is True
    assert_available(report, cand)


def test_candidate_filling_the_hole_touches(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    tid = insert(conn, rules, HOLED)
    report = check(client, HOLE)  # shares the hole's boundary with the title
    assert report["conflicts"] == []
    assert list(by_id(report["touching"])) == [tid]
    assert report["touching"][0]["overlap_km2"] == pytest.approx(0, abs=1e-4)
    assert report["admissible"] is True


def test_candidate_overlapping_the_hole_partly(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    tid = insert(conn, rules, HOLED)
    cand = sq(BA[0] + 0.05, BA[1] + 0.05, 0.04)  # half in the hole, half on the title
    report = check(client, cand)
    item = only_conflict(report, tid)
    expected = cand.intersection(OUTER.difference(HOLE))
    close(item["overlap_km2"], km2(expected))
    assert item["overlap_km2"] < km2(cand.intersection(OUTER))  # the hole is not counted
    assert_overlap(item, cand, HOLED)
    assert_available(report, cand.difference(HOLED))


# --------------------------------------------------------------- multipolygon


def test_multipolygon_title_with_both_parts_overlapping(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    a = sq(*BA, 0.04)
    b = sq(BA[0] + 0.08, BA[1], 0.04)
    title = MultiPolygon([a, b])
    tid = insert(conn, rules, title)
    cand = box(BA[0] + 0.02, BA[1] + 0.01, BA[0] + 0.10, BA[1] + 0.03)
    report = check(client, cand)
    item = only_conflict(report, tid)  # one conflict for the whole title
    close(item["overlap_km2"], km2(cand.intersection(a)) + km2(cand.intersection(b)))
    assert_overlap(item, cand, title)
    assert_available(report, cand.difference(title))


# ----------------------------------------------------------- touching, slivers


def test_edge_sharing_neighbour_touches(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    tid = insert(conn, rules, sq(*BA))
    cand = sq(BA[0] + D, BA[1])
    report = check(client, cand)
    assert report["conflicts"] == []
    (item,) = report["touching"]
    assert item["id"] == tid and item["kind"] == "title"
    assert item["overlap_km2"] == pytest.approx(0, abs=1e-4)
    assert report["admissible"] is True
    assert_available(report, cand)


def test_corner_touching_neighbour_touches(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    tid = insert(conn, rules, sq(*BA))
    cand = sq(BA[0] + D, BA[1] + D)
    report = check(client, cand)
    assert report["conflicts"] == []
    assert [t["id"] for t in report["touching"]] == [tid]
    assert report["admissible"] is True


def _corner_sliver(target_m2: float) -> tuple[Polygon, Polygon]:
    """A title and a candidate overlapping in a small square of about ``target_m2``."""
    title = sq(*BA)
    side = target_m2**0.5
    lat = BA[1] + D
    _, _, dist_lon = GEOD.inv(BA[0], lat, BA[0] + 1e-3, lat)
    _, _, dist_lat = GEOD.inv(BA[0], lat, BA[0], lat + 1e-3)
    dx, dy = 1e-3 * side / dist_lon, 1e-3 * side / dist_lat
    cand = box(BA[0] + D - dx, lat - dy, BA[0] + 2 * D, lat + D)
    return title, cand


def test_sliver_below_100_m2_touches(client: TestClient, conn: Connection, rules: RuleBook) -> None:
    title, cand = _corner_sliver(60.0)
    m2 = km2(cand.intersection(title)) * 1e6
    assert 0 < m2 < 100  # precondition
    tid = insert(conn, rules, title)
    report = check(client, cand)
    assert report["conflicts"] == []
    (item,) = report["touching"]
    assert item["id"] == tid
    assert item["overlap_km2"] * 1e6 == pytest.approx(m2, rel=0.01)
    assert report["admissible"] is True


def test_sliver_just_above_100_m2_conflicts(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    title, cand = _corner_sliver(140.0)
    m2 = km2(cand.intersection(title)) * 1e6
    assert 100 < m2 < 200  # precondition
    tid = insert(conn, rules, title)
    report = check(client, cand)
    item = only_conflict(report, tid)
    assert report["touching"] == []
    assert item["overlap_km2"] * 1e6 == pytest.approx(m2, rel=0.01)
    assert report["admissible"] is False


# ------------------------------------------------------------ several at once


def test_several_conflicts_all_listed_and_available_is_minus_their_union(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    x, y = BA
    cand = sq(x, y, 0.1)
    a = sq(x - 0.03, y - 0.03, 0.06)  # a corner
    b = sq(x + 0.05, y + 0.05, 0.03)  # inside
    c = sq(x + 0.02, y - 0.02, 0.05)  # overlaps a too (a legacy overlap)
    z = sq(x + 0.07, y - 0.01, 0.05)  # a reserved area over the edge
    app = sq(x + 0.06, y + 0.08, 0.03)  # an earlier pending application
    ids = {
        insert(conn, rules, a): a,
        insert(conn, rules, b, licence_type="mining_lease"): b,
        insert(conn, rules, c, licence_type="prospecting_licence"): c,
        insert(conn, rules, app, status="applied"): app,
    }
    zid = reserve(conn, z)
    report = check(client, cand)
    found = {(i["kind"], i["id"]): i for i in report["conflicts"]}
    assert len(found) == len(report["conflicts"]) == 5
    assert ("reserved_area", zid) in found
    for lid, geom in ids.items():
        kind = "application" if geom is app else "title"
        assert_overlap(found[(kind, lid)], cand, geom)
    assert_overlap(found[("reserved_area", zid)], cand, z)
    union = a.union(b).union(c).union(z).union(app)
    assert_available(report, cand.difference(union))
    assert report["admissible"] is False
    assert [r["code"] for r in report["reasons"]] == ["conflicts"]


# ---------------------------------------------------------------- UTM zones


@pytest.mark.parametrize(
    ("title", "cand"),
    [
        # Across the UTM 41/42 boundary (66°E), Balochistan.
        (box(65.95, 29.0, 66.05, 29.1), box(65.98, 29.02, 66.1, 29.15)),
        # Across the UTM 42/43 boundary (72°E), Punjab.
        (box(71.95, 31.0, 72.05, 31.1), box(71.9, 30.95, 72.02, 31.05)),
    ],
    ids=["66E", "72E"],
)
def test_overlap_across_utm_zones_in_lonlat(
    client: TestClient, conn: Connection, rules: RuleBook, title: Polygon, cand: Polygon
) -> None:
    tid = insert(conn, rules, title)
    report = check(client, cand)
    assert_overlap(only_conflict(report, tid), cand, title)
    assert_available(report, cand.difference(title))
    close(report["candidate"]["area_km2"], km2(cand))


def test_overlap_of_a_utm42_candidate_crossing_72e(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32642", always_xy=True)
    to_ll = pyproj.Transformer.from_crs("EPSG:32642", "EPSG:4326", always_xy=True)
    corners = [(71.9, 31.0), (72.2, 31.0), (72.2, 31.1), (71.9, 31.1), (71.9, 31.0)]
    utm = [list(to_utm.transform(lon, lat)) for lon, lat in corners]
    # The register converts vertex by vertex: the same shape in lon/lat.
    cand = Polygon([to_ll.transform(e, n) for e, n in utm])
    title = box(72.0, 31.02, 72.1, 31.2)
    tid = insert(conn, rules, title)
    report = check(client, {"type": "Polygon", "coordinates": [utm]}, crs="EPSG:32642")
    assert report["candidate"]["crs"].endswith("32642")
    assert_overlap(only_conflict(report, tid), cand, title)
    assert_available(report, cand.difference(title))
    close(report["candidate"]["area_km2"], km2(cand))


# ------------------------------------------------------------ exclusivity


@pytest.mark.parametrize("status", ["granted", "applied"])
@pytest.mark.parametrize("candidate_type", ["exploration_licence", "reconnaissance_licence"])
def test_reconnaissance_licence_never_conflicts(
    client: TestClient, conn: Connection, rules: RuleBook, status: str, candidate_type: str
) -> None:
    insert(conn, rules, sq(*BA), licence_type="reconnaissance_licence", status=status)
    report = check(client, sq(BA[0] + 0.02, BA[1] + 0.02), licence_type=candidate_type)
    assert report["conflicts"] == []
    assert report["touching"] == []
    assert report["admissible"] is True


def test_exploration_title_conflicts_with_a_reconnaissance_candidate(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    title = sq(*BA)
    tid = insert(conn, rules, title)
    cand = sq(BA[0] + 0.02, BA[1] + 0.02)
    report = check(client, cand, licence_type="reconnaissance_licence")
    assert_overlap(only_conflict(report, tid), cand, title)
    assert report["admissible"] is False


@pytest.mark.parametrize("status", ["refused", "expired", "surrendered", "cancelled"])
def test_dead_licences_never_conflict(
    client: TestClient, conn: Connection, rules: RuleBook, status: str
) -> None:
    insert(conn, rules, sq(*BA), status=status)
    cand = sq(BA[0] + 0.02, BA[1] + 0.02)
    report = check(client, cand)
    assert report["conflicts"] == [] and report["touching"] == []
    assert report["admissible"] is True
    assert_available(report, cand)


# ------------------------------------------------------ pending applications

STORED_AT = "2025-03-10T10:00:00+05:00"


def _application(conn: Connection, rules: RuleBook, received_at: str = STORED_AT) -> int:
    aid = insert(conn, rules, sq(*BA), status="applied", licence_no="BA-EL-APP-1")
    # An import stamps received_at with the server clock; move the stored
    # application to a fixed instant so that the dates compared are known.
    conn.execute(
        text("UPDATE licences SET received_at = :t WHERE id = :id"),
        {"t": datetime.fromisoformat(received_at), "id": aid},
    )
    return aid


CAND = sq(BA[0] + 0.02, BA[1] + 0.02)


def test_application_received_on_an_earlier_date_conflicts(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    aid = _application(conn, rules)
    report = check(client, CAND, received_at="2025-03-11T09:00:00+05:00")
    item = only_conflict(report, aid)
    assert item["kind"] == "application"
    assert item["status"] == "applied"
    assert item["licence_no"] == "BA-EL-APP-1"
    assert item["simultaneous"] is False
    assert datetime.fromisoformat(item["received_at"]) == datetime.fromisoformat(STORED_AT)
    assert_overlap(item, CAND, sq(*BA))
    assert report["admissible"] is False


@pytest.mark.parametrize(
    "received_at",
    ["2025-03-10T15:00:00+05:00", "2025-03-10T08:00:00+05:00", "2025-03-10T10:00:00+05:00"],
    ids=["later-same-day", "earlier-same-day", "same-instant"],
)
def test_application_received_on_the_same_date_is_simultaneous(
    client: TestClient, conn: Connection, rules: RuleBook, received_at: str
) -> None:
    aid = _application(conn, rules)
    report = check(client, CAND, received_at=received_at)
    item = only_conflict(report, aid)
    assert item["kind"] == "application"
    assert item["simultaneous"] is True
    assert report["tie_break"] in ("ballot", "auction", "committee")
    assert report["admissible"] is False


def test_same_date_is_read_in_karachi_time_not_utc(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    # Stored 2025-03-10 00:30 PKT (= 03-09 19:30 UTC); candidate 03-10 01:00 PKT
    # (= 03-09 20:00 UTC): the same date in Karachi.
    aid = _application(conn, rules, "2025-03-10T00:30:00+05:00")
    report = check(client, CAND, received_at="2025-03-09T20:00:00Z")
    assert only_conflict(report, aid)["simultaneous"] is True


def test_different_karachi_dates_within_one_utc_date_are_not_simultaneous(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    # Stored 03-10 23:30 PKT (= 18:30 UTC); candidate 03-10 19:30 UTC = 03-11 00:30 PKT.
    aid = _application(conn, rules, "2025-03-10T23:30:00+05:00")
    report = check(client, CAND, received_at="2025-03-10T19:30:00Z")
    assert only_conflict(report, aid)["simultaneous"] is False


def test_application_received_on_a_later_date_is_not_reported(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    aid = _application(conn, rules)
    report = check(client, CAND, received_at="2025-03-09T12:00:00+05:00")
    assert aid not in by_id(report["conflicts"])
    assert aid not in by_id(report["touching"])
    assert report["admissible"] is True
    assert_available(report, CAND)


# ------------------------------------------------------------ reserved areas


def test_reserved_area_conflicts(client: TestClient, conn: Connection, rules: RuleBook) -> None:
    area = sq(*BA, 0.08)
    rid = reserve(conn, area, "Hazarganji-Chiltan National Park")
    cand = sq(BA[0] + 0.05, BA[1] + 0.05)
    report = check(client, cand)
    item = only_conflict(report, rid)
    assert item["kind"] == "reserved_area"
    assert item["name"] == "Hazarganji-Chiltan National Park"
    assert item["type"] == "protected"
    assert item.get("licence_no") is None
    assert item.get("holder") is None
    assert_overlap(item, cand, area)
    assert_available(report, cand.difference(area))
    assert report["admissible"] is False


def test_reserved_area_conflicts_even_with_a_reconnaissance_candidate(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    rid = reserve(conn, sq(*BA, 0.08))
    report = check(client, sq(BA[0] + 0.05, BA[1] + 0.05), licence_type="reconnaissance_licence")
    assert only_conflict(report, rid)["kind"] == "reserved_area"


# ------------------------------------------------------------- admissibility


def codes(report: dict[str, Any]) -> list[str]:
    return [r["code"] for r in report["reasons"]]


def test_free_ground_is_admissible_and_all_available(client: TestClient) -> None:
    cand = sq(*BA)
    report = check(client, cand)
    assert report["admissible"] is True
    assert report["reasons"] == []
    assert report["conflicts"] == [] and report["touching"] == []
    assert report["candidate"]["province_code"] == "PK-BA"
    assert report["candidate"]["licence_type"] == "exploration_licence"
    close(report["candidate"]["area_km2"], km2(cand))
    assert report["available"]["properties"]["area_km2"] == report["candidate"]["area_km2"]
    assert_available(report, cand)


def test_conflicts_make_the_candidate_inadmissible(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    insert(conn, rules, sq(*BA), licence_no="BA-EL-BLOCK")
    report = check(client, sq(BA[0] + 0.02, BA[1]))
    assert report["admissible"] is False
    assert codes(report) == ["conflicts"]
    assert "BA-EL-BLOCK" in report["reasons"][0]["detail"]


def test_punjab_mining_lease_over_250_km2_is_inadmissible(client: TestClient) -> None:
    cand = sq(PB[0] - 0.1, PB[1] - 0.1, 0.2)
    assert km2(cand) > 250  # precondition
    report = check(client, cand, licence_type="mining_lease")
    assert report["admissible"] is False
    assert "area_limit_exceeded" in codes(report)


def test_punjab_mining_lease_under_250_km2_is_admissible(client: TestClient) -> None:
    report = check(client, sq(*PB, 0.1), licence_type="mining_lease")
    assert report["admissible"] is True and report["reasons"] == []


def test_declared_wrong_province_is_inadmissible(client: TestClient) -> None:
    report = check(client, sq(*BA), province="Punjab")
    assert report["admissible"] is False
    assert "province_mismatch" in codes(report)


def test_declared_right_province_is_admissible(client: TestClient) -> None:
    report = check(client, sq(*BA), province="PK-BA")
    assert report["admissible"] is True


def test_crossing_a_province_boundary_is_inadmissible(client: TestClient) -> None:
    # Straddles the Balochistan/Sindh boundary near 67.23°E, 27°N.
    report = check(client, box(67.18, 26.95, 67.28, 27.05))
    assert report["admissible"] is False
    assert "province_mismatch" in codes(report)
    assert report["candidate"].get("province_code") is None


def test_a_check_writes_nothing(client: TestClient, conn: Connection, rules: RuleBook) -> None:
    insert(conn, rules, sq(*BA))
    insert(conn, rules, sq(BA[0] + 0.03, BA[1]), status="applied")
    reserve(conn, sq(BA[0], BA[1] + 0.03))
    tables = (
        "licences",
        "licence_versions",
        "licence_events",
        "licence_conflicts",
        "parties",
        "receipt_counters",
        "reserved_areas",
    )

    def counts() -> dict[str, int]:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}

    before = counts()
    report = check(client, sq(BA[0] + 0.01, BA[1] + 0.01), received_at="2030-01-01T00:00:00Z")
    assert len(report["conflicts"]) == 3
    assert counts() == before


# ----------------------------------------------------------------- bad input


def bad(r: Any, field: str) -> None:
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["code"] in ("invalid_input", "invalid_geometry"), err
    assert field in (err.get("field") or ""), err


def test_not_a_feature_is_rejected(client: TestClient) -> None:
    r = client.post("/overlaps/check", json=mapping(sq(*BA)))
    bad(r, "type")


def test_missing_licence_type_is_rejected(client: TestClient) -> None:
    body = {"type": "Feature", "geometry": mapping(sq(*BA)), "properties": {"minerals": ["Gold"]}}
    bad(client.post("/overlaps/check", json=body), "licence_type")


def test_unknown_licence_type_is_rejected(client: TestClient) -> None:
    bad(check_raw(client, sq(*BA), licence_type="gold_rush_permit"), "licence_type")


def test_bad_geometry_is_rejected(client: TestClient) -> None:
    x, y = BA
    bow_tie = {
        "type": "Polygon",
        "coordinates": [[[x, y], [x + D, y + D], [x + D, y], [x, y + D], [x, y]]],
    }
    r = check_raw(client, bow_tie)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_geometry"


@pytest.mark.parametrize("value", ["yesterday", "2025-03-10T10:00:00", "2025-13-40T00:00:00Z"])
def test_bad_received_at_is_rejected(client: TestClient, value: str) -> None:
    bad(check_raw(client, sq(*BA), received_at=value), "received_at")


# ------------------------------------------------------------ POST /licences


def _apply(client: TestClient, geom: Any) -> dict[str, Any]:
    body = {
        "type": "Feature",
        "geometry": mapping(geom),
        "properties": {
            "licence_type": "exploration_licence",
            "minerals": ["Copper"],
            "holder": "Newcomer Ltd",
        },
    }
    r = client.post("/licences", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _comparable(item: dict[str, Any]) -> tuple[Any, ...]:
    return (
        item["kind"],
        item["id"],
        item.get("licence_no") or item.get("name"),
        round(item["overlap_km2"], 6),
        round(item["overlap_pct_of_candidate"], 3),
        round(item["overlap_pct_of_other"], 3),
        item.get("simultaneous"),
    )


def test_application_carries_the_conflicts_the_check_reported(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    title = sq(*BA)
    tid = insert(conn, rules, title)
    aid = insert(conn, rules, sq(BA[0] + 0.04, BA[1] + 0.04), status="applied")
    rid = reserve(conn, sq(BA[0] + 0.06, BA[1]))
    cand = sq(BA[0] + 0.03, BA[1] + 0.01)
    checked = check(client, cand)
    created = _apply(client, cand)
    got = created["properties"]["conflicts"]
    assert sorted(map(_comparable, got)) == sorted(map(_comparable, checked["conflicts"]))
    kinds = {(c["kind"], c["id"]) for c in got}
    assert kinds == {("title", tid), ("application", aid), ("reserved_area", rid)}
    assert_overlap(next(c for c in got if c["id"] == tid and c["kind"] == "title"), cand, title)

    rows = conn.execute(
        text(
            "SELECT kind, other_licence_id, reserved_area_id, overlap_km2, simultaneous "
            "FROM licence_conflicts WHERE licence_id = :id"
        ),
        {"id": created["id"]},
    ).all()
    recorded = {(r.kind, r.other_licence_id or r.reserved_area_id): r for r in rows}
    assert len(rows) == 3 and set(recorded) == kinds
    for c in got:
        row = recorded[(c["kind"], c["id"])]
        assert row.overlap_km2 == pytest.approx(c["overlap_km2"], abs=1e-6)
        assert row.simultaneous is bool(c.get("simultaneous", False))
        if c["kind"] == "reserved_area":
            assert row.other_licence_id is None
        else:
            assert row.reserved_area_id is None
    # The earlier application was received today, like the new one.
    assert recorded[("application", aid)].simultaneous is True


def test_application_without_conflicts_records_none(
    client: TestClient, conn: Connection, rules: RuleBook
) -> None:
    insert(conn, rules, sq(*BA))
    created = _apply(client, sq(BA[0] + D, BA[1]))  # edge-sharing neighbour only
    assert created["properties"]["conflicts"] == []
    n = conn.execute(
        text("SELECT count(*) FROM licence_conflicts WHERE licence_id = :id"),
        {"id": created["id"]},
    ).scalar_one()
    assert n == 0


def test_application_does_not_conflict_with_itself(client: TestClient) -> None:
    created = _apply(client, sq(*BA))
    assert created["properties"]["conflicts"] == []
