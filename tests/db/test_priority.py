"""Priority under real concurrency: grant races, receipt numbering and ranking by receipt.

These tests need transactions that really run side by side, so they cannot use
the rolled-back ``conn``: the module makes its own database in the test
cluster (migrated, provinces loaded), commits for real, and drops the database
at the end. Every test draws its shapes in its own patch of ground (and the
receipt tests in provinces no other test uses), so the tests do not meet.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import shapely
from shapely.geometry import box, mapping
from sqlalchemy import Engine, text

from api.app import create_app
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.db.licences import Candidate, Holder, Shape, Transition, register_licences, transition
from cadastre.domain.geometry import intake
from cadastre.errors import Conflict
from cadastre.rules import RuleBook
from cadastre.settings import Settings
from tests.live import admin_headers, live_server, scratch_database

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
N = 24  # concurrent actors in every race (>= 20)
TZ = ZoneInfo("Asia/Karachi")
EXPIRES = date.today() + timedelta(days=3 * 365)
GRANTED_ON = date.today() - timedelta(days=30)

# Patches of ground, one per test (all checked to lie well inside their province).
KP_RACE_LIB = (71.60, 34.60)
KP_RACE_HTTP = (71.60, 34.80)
KP_PRIORITY = (71.85, 34.60)
KP_GRANT = (71.85, 34.85)
RECEIPT_LIB = {"PK-SD": (68.30, 25.80), "PK-BA": (66.00, 29.00)}
RECEIPT_HTTP = {"PK-PB": (72.50, 31.00), "PK-GB": (74.50, 36.00)}


# ------------------------------------------------------------------------- fixtures


#: Sign-in of the live server's writes (an admin's API key), set by the ``server`` fixture.
HEADERS: dict[str, str] = {}


@dataclass(frozen=True)
class PrioDb:
    url: str
    engine: Engine


@pytest.fixture(scope="module")
def prio(cluster: LocalCluster) -> Iterator[PrioDb]:
    """A database of its own, committed to for real, dropped at the end."""
    with scratch_database(cluster, "prio") as url:
        engine = make_engine(url, pool_size=25)
        try:
            yield PrioDb(url, engine)
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def server(prio: PrioDb) -> Iterator[str]:
    """The real service on a free local port (uvicorn in a background thread)."""
    HEADERS.update(admin_headers(prio.url))
    with live_server(create_app(Settings(environment="test", database_url=prio.url))) as url:
        yield url


# -------------------------------------------------------------------------- helpers


def _shape(geom: Any) -> Shape:
    return Shape.from_intake(intake(mapping(geom), None))


def _candidate(
    geom: Any,
    *,
    licence_type: str = "exploration_licence",
    status: str = "applied",
    holder: str = "Priority Mining Co",
) -> Candidate:
    granted = status == "granted"
    return Candidate(
        licence_type=licence_type,
        minerals=["Copper"],
        holder=Holder(name=holder),
        shape=_shape(geom),
        status=status,
        granted_on=GRANTED_ON if granted else None,
        expires_on=EXPIRES if granted else None,
    )


def _register(prio: PrioDb, rules: RuleBook, cands: list[Candidate], action: str) -> list[int]:
    """Commit ``cands`` in one transaction; their ids in input order."""
    with prio.engine.begin() as conn:
        result = register_licences(conn, cands, rules=rules, actor="test.setup", action=action)
    assert not result.rejected
    return [result.created[i] for i in range(len(cands))]


def _race_squares(origin: tuple[float, float]) -> list[Any]:
    """N squares of 0.1° each shifted 0.003° (~300 m) east: every pair overlaps."""
    x, y = origin
    squares = [box(x + 0.003 * i, y, x + 0.003 * i + 0.1, y + 0.1) for i in range(N)]
    assert shapely.intersection(squares[0], squares[-1]).area > 0.02 * 0.1
    return squares


def _race(n: int, work: Callable[[int], Any], setup: Callable[[int], Any] | None = None) -> list:
    """Run ``work(i)`` in ``n`` threads released together; ("ok", value) or ("err", exc)."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            if setup is not None:
                setup(i)
            barrier.wait(timeout=30)
            results[i] = ("ok", work(i))
        except BaseException as exc:
            results[i] = ("err", exc)

    threads = [threading.Thread(target=run, args=(i,), name=f"racer-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    return results


def _state(prio: PrioDb, ids: list[int]) -> dict[int, dict[str, Any]]:
    with prio.engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT l.id, l.licence_no, l.status, l.version,
                       (SELECT count(*) FROM licence_events e WHERE e.licence_id = l.id) AS events,
                       (SELECT count(*) FROM licence_versions v WHERE v.licence_id = l.id)
                           AS versions
                FROM licences l WHERE l.id = ANY(:ids)
                """
            ),
            {"ids": ids},
        ).mappings()
        return {r["id"]: dict(r) for r in rows}


def _overlapping_exclusive_titles(prio: PrioDb, rules: RuleBook) -> list[tuple[Any, ...]]:
    """Every pair of granted exclusive titles sharing more than 100 m² (whole database)."""
    non_exclusive = [k for k in rules.types if not rules.rule(k).exclusive]
    with prio.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    """
                    SELECT a.licence_no, b.licence_no,
                           ST_Area(ST_Intersection(a.geom, b.geom)::geography) AS m2
                    FROM licences a
                    JOIN licences b ON a.id < b.id AND a.geom && b.geom
                                   AND ST_Intersects(a.geom, b.geom)
                    WHERE a.status = 'granted' AND b.status = 'granted'
                      AND a.licence_type <> ALL(:nx) AND b.licence_type <> ALL(:nx)
                      AND ST_Area(ST_Intersection(a.geom, b.geom)::geography) > 100
                    """
                ),
                {"nx": non_exclusive},
            )
        ]


def _events(prio: PrioDb, licence_id: int) -> list[dict[str, Any]]:
    with prio.engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                text(
                    "SELECT action, actor, version FROM licence_events "
                    "WHERE licence_id = :id ORDER BY id"
                ),
                {"id": licence_id},
            ).mappings()
        ]


def _conflict_rows(prio: PrioDb, licence_id: int) -> list[dict[str, Any]]:
    with prio.engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                text(
                    "SELECT other_licence_id, reserved_area_id, kind, overlap_km2, simultaneous "
                    "FROM licence_conflicts WHERE licence_id = :id ORDER BY id"
                ),
                {"id": licence_id},
            ).mappings()
        ]


def _assert_race_outcome(prio: PrioDb, rules: RuleBook, ids: list[int], winner: int) -> None:
    state = _state(prio, ids)
    assert len(state) == len(ids)
    granted = [i for i, s in state.items() if s["status"] == "granted"]
    assert granted == [winner]
    assert state[winner]["version"] == 2
    assert [e["action"] for e in _events(prio, winner)] == ["apply", "grant"]
    for lid, s in state.items():
        if lid == winner:
            continue
        assert (s["status"], s["version"], s["events"], s["versions"]) == ("applied", 1, 1, 1), s
    assert _overlapping_exclusive_titles(prio, rules) == []


def _feature(geom: Any, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": mapping(geom),
        "properties": {
            "licence_type": "exploration_licence",
            "minerals": ["Copper"],
            "holder": "Priority Mining Co",
            **props,
        },
    }


def _post(base: str, geom: Any, **props: Any) -> dict[str, Any]:
    r = httpx.post(f"{base}/licences", json=_feature(geom, **props), headers=HEADERS, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _grant_http(base: str, lid: int) -> httpx.Response:
    return httpx.post(
        f"{base}/licences/{lid}/transitions",
        json={"action": "grant", "expires_on": EXPIRES.isoformat()},
        headers=HEADERS,
        timeout=30,
    )


def _day(ts: str | datetime) -> date:
    instant = datetime.fromisoformat(ts) if isinstance(ts, str) else ts
    return instant.astimezone(TZ).date()


# ------------------------------------------------------------------- 1. grant race


def test_grant_race_library_exactly_one_wins(prio: PrioDb, rules: RuleBook) -> None:
    ids = _register(prio, rules, [_candidate(g) for g in _race_squares(KP_RACE_LIB)], "apply")

    def grant(i: int) -> None:
        with prio.engine.begin() as conn:
            transition(
                conn,
                ids[i],
                Transition(action="grant", expires_on=EXPIRES),
                rules=rules,
                actor=f"officer-{i}",
            )

    results = _race(N, grant)
    winners = [i for i, (kind, _) in enumerate(results) if kind == "ok"]
    assert len(winners) == 1, [r[1] for r in results if r[0] == "err"][:3]
    (w,) = winners
    winner_no = _state(prio, [ids[w]])[ids[w]]["licence_no"]
    for i, (_, exc) in enumerate(results):
        if i == w:
            continue
        assert type(exc) is Conflict, repr(exc)
        assert exc.code == "conflict"
        assert winner_no in exc.message
        assert ids[w] in [g["id"] for g in exc.where["granted_to"]]
        assert all(g["overlap_km2"] > 0.0001 for g in exc.where["granted_to"])
    _assert_race_outcome(prio, rules, ids, ids[w])
    assert _events(prio, ids[w])[-1]["actor"] == f"officer-{w}"


def test_grant_race_http_exactly_one_200(prio: PrioDb, rules: RuleBook, server: str) -> None:
    ids = _register(prio, rules, [_candidate(g) for g in _race_squares(KP_RACE_HTTP)], "apply")
    # Each racer signs in as an account of its own: the winner's is the event's actor.
    racers = [admin_headers(prio.url, f"officer-{i}") for i in range(N)]
    clients: list[httpx.Client] = [httpx.Client(base_url=server, timeout=60) for _ in range(N)]
    try:
        results = _race(
            N,
            lambda i: clients[i].post(
                f"/licences/{ids[i]}/transitions",
                json={"action": "grant", "expires_on": EXPIRES.isoformat()},
                headers=racers[i],
            ),
        )
    finally:
        for c in clients:
            c.close()
    assert all(kind == "ok" for kind, _ in results), [r for r in results if r[0] == "err"][:3]
    codes = sorted(r.status_code for _, r in results)
    assert codes == [200] + [409] * (N - 1), [r.text for _, r in results if r.status_code >= 500]
    (w,) = [i for i, (_, r) in enumerate(results) if r.status_code == 200]
    won = results[w][1].json()
    assert won["id"] == ids[w]
    assert won["properties"]["status"] == "granted"
    winner_no = won["properties"]["licence_no"]
    for i, (_, r) in enumerate(results):
        if i == w:
            continue
        body = r.json()
        assert body["code"] == "conflict", body
        assert winner_no in body["detail"]
        assert ids[w] in [g["id"] for g in body["where"]["granted_to"]]
    _assert_race_outcome(prio, rules, ids, ids[w])
    assert _events(prio, ids[w])[-1]["actor"] == f"officer-{w}"


# ------------------------------------------------------------- 2. receipt ordering


def _assert_receipts(prio: PrioDb, ids_by_province: dict[str, list[int]]) -> None:
    with prio.engine.connect() as conn:
        for code, ids in ids_by_province.items():
            rows = conn.execute(
                text(
                    "SELECT id, receipt_seq, received_at, licence_no, province_code "
                    "FROM licences WHERE id = ANY(:ids) ORDER BY receipt_seq"
                ),
                {"ids": ids},
            ).all()
            assert len(rows) == len(ids)
            assert {r.province_code for r in rows} == {code}
            assert [r.receipt_seq for r in rows] == list(range(1, len(ids) + 1)), code
            by_time = sorted(rows, key=lambda r: r.received_at)
            assert [r.id for r in by_time] == [r.id for r in rows], code
            stamps = [r.received_at for r in rows]
            assert all(a < b for a, b in itertools.pairwise(stamps)), code
            assert all(r.licence_no.endswith(f"-{r.receipt_seq:06d}") for r in rows)
            last = conn.execute(
                text("SELECT last_seq FROM receipt_counters WHERE province_code = :p"),
                {"p": code},
            ).scalar_one()
            assert last == len(ids)


def _receipt_plan(regions: dict[str, tuple[float, float]]) -> list[tuple[str, Any]]:
    """N small, separate squares alternating between the provinces of ``regions``."""
    codes = list(regions)
    plan = []
    for i in range(N):
        code = codes[i % len(codes)]
        x, y = regions[code]
        k = i // len(codes)
        plan.append((code, box(x + 0.03 * k, y, x + 0.03 * k + 0.02, y + 0.02)))
    return plan


def test_receipts_concurrent_library(prio: PrioDb, rules: RuleBook) -> None:
    plan = _receipt_plan(RECEIPT_LIB)

    def submit(i: int) -> int:
        geom = plan[i][1]
        with prio.engine.begin() as conn:
            result = register_licences(
                conn,
                [_candidate(geom, holder=f"Receipt Co {i}")],
                rules=rules,
                actor=f"clerk-{i}",
            )
        return result.created[0]

    results = _race(N, submit)
    assert all(kind == "ok" for kind, _ in results), [r for r in results if r[0] == "err"][:3]
    by_province: dict[str, list[int]] = {code: [] for code in RECEIPT_LIB}
    for (code, _), (_, lid) in zip(plan, results, strict=True):
        by_province[code].append(lid)
    _assert_receipts(prio, by_province)
    # Microsecond precision: receipts are not rounded to the second or millisecond.
    with prio.engine.connect() as conn:
        micros = conn.execute(
            text(
                "SELECT count(DISTINCT extract(microseconds FROM received_at)::bigint % 1000) "
                "FROM licences WHERE id = ANY(:ids)"
            ),
            {"ids": [lid for _, lid in results]},
        ).scalar_one()
    assert micros > 1


def test_receipts_concurrent_http(prio: PrioDb, server: str) -> None:
    plan = _receipt_plan(RECEIPT_HTTP)
    clients: list[httpx.Client] = [httpx.Client(base_url=server, timeout=60) for _ in range(N)]
    try:
        results = _race(
            N,
            lambda i: clients[i].post(
                "/licences",
                json=_feature(plan[i][1], province=plan[i][0], holder=f"Receipt Web Co {i}"),
                headers=HEADERS,
            ),
        )
    finally:
        for c in clients:
            c.close()
    assert all(kind == "ok" for kind, _ in results), [r for r in results if r[0] == "err"][:3]
    bodies = []
    for _, r in results:
        assert r.status_code == 201, r.text
        bodies.append(r.json())
    by_province: dict[str, list[dict[str, Any]]] = {code: [] for code in RECEIPT_HTTP}
    for b in bodies:
        by_province[b["properties"]["province_code"]].append(b)
    for code, feats in by_province.items():
        feats.sort(key=lambda f: f["properties"]["receipt_seq"])
        assert [f["properties"]["receipt_seq"] for f in feats] == list(range(1, len(feats) + 1))
        stamps = [datetime.fromisoformat(f["properties"]["received_at"]) for f in feats]
        assert all(a < b for a, b in itertools.pairwise(stamps)), code
        assert all(f["properties"]["conflicts"] == [] for f in feats)
    _assert_receipts(prio, {c: [f["id"] for f in fs] for c, fs in by_province.items()})


# ------------------------------------------------------------------------ 3. priority


def test_earlier_application_conflicts_for_later_not_reverse(prio: PrioDb, server: str) -> None:
    x, y = KP_PRIORITY
    first_geom = box(x, y, x + 0.05, y + 0.05)
    later_geom = box(x + 0.02, y, x + 0.07, y + 0.05)
    first = _post(server, first_geom, holder="Early Bird Ltd")
    a = first["id"]
    # Received two days before: a receipt on another, earlier date.
    with prio.engine.begin() as conn:
        for table, key in (("licences", "id"), ("licence_versions", "licence_id")):
            conn.execute(
                text(
                    f"UPDATE {table} SET received_at = received_at - interval '2 days' "
                    f"WHERE {key} = :id"
                ),
                {"id": a},
            )
    before = httpx.get(f"{server}/licences/{a}", timeout=30).json()
    before_history = httpx.get(f"{server}/licences/{a}/history", timeout=30).json()

    later = _post(server, later_geom, holder="Late Comer Ltd")
    b = later["id"]
    assert later["properties"]["receipt_seq"] > before["properties"]["receipt_seq"]

    # The later one names the earlier one: an application, not simultaneous.
    (c,) = later["properties"]["conflicts"]
    assert (c["kind"], c["id"], c["licence_no"]) == (
        "application",
        a,
        before["properties"]["licence_no"],
    )
    assert c["simultaneous"] is False
    assert c["overlap_km2"] > 5
    (row,) = _conflict_rows(prio, b)
    assert (row["other_licence_id"], row["kind"], row["simultaneous"]) == (a, "application", False)
    assert row["reserved_area_id"] is None
    assert row["overlap_km2"] == pytest.approx(c["overlap_km2"], rel=1e-6)

    # Not the other way round, and the earlier record is untouched by the later arrival.
    assert _conflict_rows(prio, a) == []
    assert httpx.get(f"{server}/licences/{a}", timeout=30).json() == before
    assert httpx.get(f"{server}/licences/{a}/history", timeout=30).json() == before_history
    assert before["properties"]["version"] == 1

    # A check received between them (on the day in between) ranks behind the first and
    # ahead of the later one: only the first is reported.
    between = datetime.now(TZ) - timedelta(days=1)
    r = httpx.post(
        f"{server}/overlaps/check",
        json={
            "type": "Feature",
            "geometry": mapping(box(x, y, x + 0.07, y + 0.05)),
            "properties": {
                "licence_type": "exploration_licence",
                "minerals": ["Copper"],
                "received_at": between.isoformat(),
            },
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    ids = [k["id"] for k in r.json()["conflicts"]]
    assert a in ids
    assert b not in ids


def test_same_date_applications_are_simultaneous(prio: PrioDb, server: str) -> None:
    x, y = KP_PRIORITY
    x += 0.12
    first = _post(server, box(x, y, x + 0.05, y + 0.05), holder="Same Day One Ltd")
    a = first["id"]
    before = httpx.get(f"{server}/licences/{a}", timeout=30).json()
    later = _post(server, box(x + 0.02, y + 0.01, x + 0.07, y + 0.06), holder="Same Day Two Ltd")
    b = later["id"]
    same_day = _day(first["properties"]["received_at"]) == _day(later["properties"]["received_at"])
    assert same_day, "the two receipts straddle midnight in Asia/Karachi; run again"
    assert first["properties"]["conflicts"] == []
    (c,) = later["properties"]["conflicts"]
    assert (c["kind"], c["id"], c["simultaneous"]) == ("application", a, True)
    assert c["received_at"] is not None
    assert datetime.fromisoformat(c["received_at"]) < datetime.fromisoformat(
        later["properties"]["received_at"]
    )
    (row,) = _conflict_rows(prio, b)
    assert (row["other_licence_id"], row["kind"], row["simultaneous"]) == (a, "application", True)
    assert _conflict_rows(prio, a) == []
    assert httpx.get(f"{server}/licences/{a}", timeout=30).json() == before


# --------------------------------------------------------------- 4. grant over titles


def test_grant_over_existing_title(prio: PrioDb, rules: RuleBook, server: str) -> None:
    x, y = KP_GRANT
    d = 0.05
    title_geom = box(x, y, x + d, y + d)
    recon_geom = box(x + 0.2, y, x + 0.2 + d, y + d)
    title, recon = _register(
        prio,
        rules,
        [
            _candidate(title_geom, status="granted", holder="Old Title Ltd"),
            _candidate(
                recon_geom,
                licence_type="reconnaissance_licence",
                status="granted",
                holder="Recon Ltd",
            ),
        ],
        "import",
    )
    over, beside, over_recon = _register(
        prio,
        rules,
        [
            _candidate(box(x + 0.02, y, x + 0.02 + d, y + d)),  # overlaps the title
            _candidate(box(x - d, y, x, y + d)),  # shares the title's west edge
            _candidate(box(x + 0.22, y, x + 0.22 + d, y + d)),  # overlaps the recon title
        ],
        "apply",
    )
    title_no = _state(prio, [title])[title]["licence_no"]

    r = _grant_http(server, over)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "conflict"
    assert title_no in body["detail"]
    (g,) = body["where"]["granted_to"]
    assert (g["id"], g["licence_no"]) == (title, title_no)
    assert g["overlap_km2"] > 5
    assert _state(prio, [over])[over]["status"] == "applied"
    assert _state(prio, [over])[over]["version"] == 1

    r = _grant_http(server, beside)
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["status"] == "granted"

    r = _grant_http(server, over_recon)
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["status"] == "granted"
    state = _state(prio, [recon, over_recon, beside])
    assert {s["status"] for s in state.values()} == {"granted"}

    # The library says the same as the service.
    with pytest.raises(Conflict) as info, prio.engine.begin() as conn:
        transition(
            conn, over, Transition(action="grant", expires_on=EXPIRES), rules=rules, actor="x"
        )
    assert title in [w["id"] for w in info.value.where["granted_to"]]
    assert _overlapping_exclusive_titles(prio, rules) == []
