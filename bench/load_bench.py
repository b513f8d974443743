#!/usr/bin/env python3
"""Load run: many concurrent readers and writers for minutes, then a consistency check.

    .venv/bin/python bench/load_bench.py                              # 3 min, no restart
    .venv/bin/python bench/load_bench.py --restart-at 60 --down 5     # database restart at 60 s

One throw-away PostGIS (``LocalCluster``, durable, as ``register_bench.py``), ``--count``
synthetic licences from ``register_bench.make_licences`` imported with ``cadastre import
licences``, ``VACUUM (ANALYZE)``, an admin account with an API key for the writers, then
``cadastre serve`` on 127.0.0.1. For ``--duration`` seconds:

* ``--readers`` threads, each cycling through: a vector tile at zoom 6, 9 or 12 over a
  random licence's centre, an items page (``/collections/licences/items?bbox=&limit=100``),
  one licence (``/licences/{id}``), an area-of-interest report (``POST /aoi/report``, a
  0.2° square);
* ``--writers`` threads (API key of the admin), each cycling through: a new application
  (``POST /licences``, a 0.01° square in Balochistan with a unique remark), a grant of its
  own oldest ungranted application, a transfer of its own title, a PATCH of minerals.

With ``--restart-at S`` the database is stopped S seconds in and started again ``--down``
seconds later (the service stays up). Reported per kind: requests/s, latency p50/p95/p99
(ms, request sent to whole body received), status counts. 503 is counted apart (what the
service answers while the database is away); any other 5xx and any transport error is a
failure; 409 on a grant is the overlap rule refusing it (expected).

Afterwards the register is checked (see :func:`consistency`). Results are appended to
``bench/results/load.jsonl``; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import shapely
from sqlalchemy import text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import register_bench as rb  # noqa: E402  (also puts the repository root on sys.path)

from cadastre.db import accounts  # noqa: E402
from cadastre.db.cluster import LocalCluster  # noqa: E402
from cadastre.db.engine import make_engine  # noqa: E402
from cadastre.db.overlaps import audit  # noqa: E402
from cadastre.db.tables import cell_rows, density_rows  # noqa: E402
from cadastre.rules import RuleBook  # noqa: E402

RESULTS = HERE / "results" / "load.jsonl"
TOKEN = "load-"
MINERALS = ("Copper", "Gold", "Chromite", "Coal")


def log(msg: str) -> None:
    print(f"[load_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    import math

    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


@dataclass
class Answer:
    kind: str
    started: float
    ms: float
    status: int | str


@dataclass
class Writer:
    """What one writer thread did and was told."""

    accepted: dict[str, int] = field(default_factory=dict)  # token -> licence id (201)
    refused: set[str] = field(default_factory=set)  # token answered 503 / transport error
    applied: list[int] = field(default_factory=list)  # ids not yet granted
    granted: list[int] = field(default_factory=list)
    changes: Counter[int] = field(default_factory=Counter)  # id -> 2xx changes after 201
    unsure: set[int] = field(default_factory=set)  # id whose change got 503 / no answer
    minerals: dict[int, str] = field(default_factory=dict)  # id -> last mineral sent


class Load:
    def __init__(self, base: str, key: str, centres: list[tuple[int, float, float]]) -> None:
        self.base = base
        self.headers = {"X-API-Key": key}
        self.centres = centres
        self.answers: list[Answer] = []
        self.stop = threading.Event()
        self.t0 = 0.0
        self.n = itertools.count()
        self.lock = threading.Lock()

    def record(self, kind: str, started: float, status: int | str) -> None:
        a = Answer(kind, started - self.t0, (time.perf_counter() - started) * 1000, status)
        with self.lock:
            self.answers.append(a)

    def call(self, http: httpx.Client, kind: str, method: str, path: str, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            r = http.request(method, path, **kw)
            r.read()
        except httpx.HTTPError as exc:
            self.record(kind, started, type(exc).__name__)
            return None
        self.record(kind, started, r.status_code)
        return r

    def reader(self, seed: int) -> None:
        rng = random.Random(seed)
        kinds = ["tile", "items", "detail", "aoi"]
        with httpx.Client(base_url=self.base, timeout=60) as http:
            for i in itertools.count():
                if self.stop.is_set():
                    return
                lid, lon, lat = rng.choice(self.centres)
                kind = kinds[i % len(kinds)]
                if kind == "tile":
                    z = rng.choice((6, 9, 12))
                    x, y = tile_of(lon, lat, z)
                    self.call(http, f"tile z{z}", "GET", f"/tiles/licences/{z}/{x}/{y}.mvt")
                elif kind == "items":
                    bbox = f"{lon - 0.25},{lat - 0.25},{lon + 0.25},{lat + 0.25}"
                    self.call(
                        http, "items", "GET", f"/collections/licences/items?bbox={bbox}&limit=100"
                    )
                elif kind == "detail":
                    self.call(http, "detail", "GET", f"/licences/{lid}")
                else:
                    d = 0.1
                    ring = [
                        [lon - d, lat - d],
                        [lon + d, lat - d],
                        [lon + d, lat + d],
                        [lon - d, lat + d],
                        [lon - d, lat - d],
                    ]
                    self.call(
                        http, "aoi", "POST", "/aoi/report",
                        json={"type": "Polygon", "coordinates": [ring]},
                    )  # fmt: skip

    def writer(self, seed: int, w: Writer) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.base, timeout=60, headers=self.headers) as http:
            for i in itertools.count():
                if self.stop.is_set():
                    return
                step = i % 4
                if step == 0 or (step == 1 and not w.applied) or (step >= 2 and not w.granted):
                    self.apply(http, rng, w)
                elif step == 1:
                    lid = w.applied.pop(0)
                    body = {
                        "action": "grant",
                        "granted_on": "2024-01-01",
                        "expires_on": "2027-01-01",
                    }
                    r = self.call(http, "grant", "POST", f"/licences/{lid}/transitions", json=body)
                    self.changed(w, lid, r, granted=True)
                elif step == 2:
                    lid = rng.choice(w.granted)
                    body = {"action": "transfer", "holder": f"Load Successor {next(self.n)}"}
                    r = self.call(
                        http, "transfer", "POST", f"/licences/{lid}/transitions", json=body
                    )
                    self.changed(w, lid, r)
                else:
                    lid = rng.choice(w.granted)
                    # Always a real change: a PATCH that changes nothing writes no version.
                    minerals = rng.choice(
                        [m for m in MINERALS if m != w.minerals.get(lid, MINERALS[0])]
                    )
                    w.minerals[lid] = minerals
                    body = {"minerals": [minerals]}
                    r = self.call(http, "patch", "PATCH", f"/licences/{lid}", json=body)
                    self.changed(w, lid, r)

    def apply(self, http: httpx.Client, rng: random.Random, w: Writer) -> None:
        token = f"{TOKEN}{next(self.n)}"
        x, y = rng.uniform(65.6, 67.4), rng.uniform(27.6, 28.9)  # inside Balochistan
        ring = [[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]
        body = {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {
                "licence_type": "exploration_licence",
                "minerals": [MINERALS[0]],
                "holder": "Load Bench (Pvt) Ltd",
                "remarks": token,
            },
        }
        r = self.call(http, "apply", "POST", "/licences", json=body)
        if r is not None and r.status_code == 201:
            lid = int(r.json()["id"])
            w.accepted[token] = lid
            w.applied.append(lid)
        else:
            w.refused.add(token)

    @staticmethod
    def changed(w: Writer, lid: int, r: Any, granted: bool = False) -> None:
        if r is not None and r.status_code in (200, 204):
            w.changes[lid] += 1
            if granted:
                w.granted.append(lid)
        elif r is None or r.status_code >= 500:
            w.unsure.add(lid)


def pct(values: list[float], q: float) -> float:
    return rb.percentile(values, q) if values else float("nan")


def summarise(answers: list[Answer], seconds: float) -> dict[str, Any]:
    by: dict[str, list[Answer]] = defaultdict(list)
    for a in answers:
        by[a.kind].append(a)
    out = {}
    for kind in sorted(by):
        rows = by[kind]
        ok = [a.ms for a in rows if isinstance(a.status, int) and a.status < 500]
        out[kind] = {
            "requests": len(rows),
            "req_s": round(len(rows) / seconds, 1),
            "p50_ms": round(pct(ok, 50), 1),
            "p95_ms": round(pct(ok, 95), 1),
            "p99_ms": round(pct(ok, 99), 1),
            "status": dict(sorted(Counter(str(a.status) for a in rows).items())),
        }
    return out


MUST_BE_ZERO = (
    "licences_without_exactly_one_current_version",
    "version_not_equal_event_or_version_count",
    "overlapping_or_reversed_version_periods",
    "licence_cells_rows_differing_from_recount",
    "licence_density_rows_differing_from_recount",
    "accepted_missing",
    "written_but_not_accepted",
    "written_after_503_or_no_answer",
    "base_licences_changed",
    "versions_not_matching_2xx_answers",
    "granted_overlap_pairs_with_a_run_grant",
)


def consistency(url: str, base_count: int, writers: list[Writer]) -> dict[str, Any]:
    """Check the register after the run; every figure should be 0 (or True)."""
    accepted = {t: i for w in writers for t, i in w.accepted.items()}
    refused = set().union(*(w.refused for w in writers))
    changes: Counter[int] = sum((w.changes for w in writers), Counter())
    unsure = set().union(*(w.unsure for w in writers))
    granted_ids = {i for w in writers for i in w.granted}
    engine = make_engine(url, pool_size=1)
    out: dict[str, Any] = {}
    try:
        with engine.connect() as c:

            def one(sql: str, **params: Any) -> Any:
                return c.execute(text(sql), params).scalar_one()

            out["licences_without_exactly_one_current_version"] = one(
                "SELECT count(*) FROM licences l WHERE (SELECT count(*) FROM licence_versions v "
                "WHERE v.licence_id = l.id AND v.valid_to IS NULL) <> 1"
            )
            out["version_not_equal_event_or_version_count"] = one(
                "SELECT count(*) FROM licences l WHERE l.version <> (SELECT count(*) FROM "
                "licence_events e WHERE e.licence_id = l.id) OR l.version <> (SELECT count(*) "
                "FROM licence_versions v WHERE v.licence_id = l.id) OR l.version <> (SELECT "
                "max(e.version) FROM licence_events e WHERE e.licence_id = l.id)"
            )
            out["overlapping_or_reversed_version_periods"] = one(
                "SELECT count(*) FROM (SELECT valid_from, valid_to, lead(valid_from) OVER "
                "(PARTITION BY licence_id ORDER BY version) AS nxt FROM licence_versions) x "
                "WHERE valid_to < valid_from OR (nxt IS NOT NULL AND "
                "(valid_to IS NULL OR valid_to > nxt))"
            )
            for table, rows, keys in (
                ("licence_cells", cell_rows("licences"), "level, cx, cy, n, applied, granted"),
                (
                    "licence_density",
                    density_rows("licences"),
                    "level, cx, cy, status, licence_type, province_code, n",
                ),
            ):
                out[f"{table}_rows_differing_from_recount"] = one(
                    f"SELECT count(*) FROM ((SELECT {keys} FROM {table} EXCEPT "  # noqa: S608
                    f"SELECT {keys} FROM ({rows}) r) UNION ALL (SELECT {keys} FROM ({rows}) r "
                    f"EXCEPT SELECT {keys} FROM {table})) d"
                )
            stored = dict(
                c.execute(
                    text("SELECT remarks, id FROM licences WHERE remarks LIKE :p"),
                    {"p": TOKEN + "%"},
                ).all()
            )
            out["accepted_201"] = len(accepted)
            out["accepted_missing"] = len(accepted.keys() - stored.keys())
            out["written_but_not_accepted"] = len(stored.keys() - accepted.keys())
            out["written_after_503_or_no_answer"] = len(stored.keys() & refused)
            out["other_licences"] = one(
                "SELECT count(*) FROM licences WHERE remarks IS NULL OR remarks NOT LIKE :p",
                p=TOKEN + "%",
            )
            out["other_licences_expected"] = base_count
            out["base_licences_changed"] = one(
                "SELECT count(*) FROM licences WHERE version <> 1 AND remarks NOT LIKE :p",
                p=TOKEN + "%",
            )
            versions = dict(
                c.execute(
                    text("SELECT id, version FROM licences WHERE id = ANY(:ids)"),
                    {"ids": list(accepted.values())},
                ).all()
            )
            wrong = [
                i for i in accepted.values() if i not in unsure and versions[i] != 1 + changes[i]
            ]
            out["versions_not_matching_2xx_answers"] = len(wrong)
            out["licences_with_an_unanswered_change"] = len(unsure)
            rules = RuleBook.load()
            pairs = [r for r in audit(c, rules=rules) if r.kind == "title_title"]
            out["granted_overlap_pairs_with_a_run_grant"] = sum(
                1 for r in pairs if r.a_id in granted_ids or r.b_id in granted_ids
            )
            out["granted_overlap_pairs_in_base_data"] = len(pairs) - int(
                out["granted_overlap_pairs_with_a_run_grant"]
            )
    finally:
        engine.dispose()
    out["ok"] = all(out[k] == 0 for k in MUST_BE_ZERO) and out["other_licences"] == base_count
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="licences in the base register")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--duration", type=float, default=180, help="seconds of load")
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--restart-at", type=float, default=None, help="restart the database")
    parser.add_argument("--down", type=float, default=5, help="seconds the database is down")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))

    work = Path(tempfile.mkdtemp(prefix="cadastre-load-"))
    work.chmod(0o755)
    cluster = LocalCluster(work / "pg", rb.free_port(), listen="127.0.0.1", durable=True)
    result: dict[str, Any] = {
        "bench": "load",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **{k: v for k, v in vars(args).items() if k != "out"},
        "machine": rb.machine(),
    }
    try:
        frame = rb.make_licences(args.count, args.seed)
        data = work / "licences.geojson"
        rb.write_file(frame, data)
        cut = shapely.centroid(frame.geometry.to_numpy())
        cluster.start()
        url = rb.prepare_database(cluster, "load")
        log(f"importing {args.count} licences ...")
        rb.time_import(data, url, work / "import.log")
        rb.vacuum_analyze(url)
        engine = make_engine(url, pool_size=1)
        with engine.begin() as conn:
            accounts.add_account(conn, "load-admin", "admin", created_by="load_bench")
            key, _ = accounts.create_key(conn, "load-admin", "load bench writers")
            ids = [
                int(i) for i in conn.execute(text("SELECT id FROM licences ORDER BY id")).scalars()
            ]
        engine.dispose()
        centres = [(ids[i], float(p.x), float(p.y)) for i, p in enumerate(cut)]
        result["versions"] = rb.server_versions(url)
        with rb.serving(url, rb.free_port(), work / "serve.log") as base:
            load = Load(base, key, centres)
            writers = [Writer() for _ in range(args.writers)]
            threads = [
                threading.Thread(target=load.reader, args=(args.seed + i,), daemon=True)
                for i in range(args.readers)
            ] + [
                threading.Thread(target=load.writer, args=(args.seed + 100 + i, w), daemon=True)
                for i, w in enumerate(writers)
            ]
            log(f"load: {args.readers} readers, {args.writers} writers, {args.duration:.0f} s")
            load.t0 = time.perf_counter()
            for t in threads:
                t.start()
            restart: dict[str, float] = {}
            try:
                if args.restart_at is not None:
                    time.sleep(args.restart_at)
                    restart["stop_at_s"] = round(time.perf_counter() - load.t0, 2)
                    cluster.stop()
                    restart["stopped_at_s"] = round(time.perf_counter() - load.t0, 2)
                    log("database stopped")
                    time.sleep(args.down)
                    cluster.start()
                    restart["started_at_s"] = round(time.perf_counter() - load.t0, 2)
                    log("database started")
                time.sleep(max(0.0, args.duration - (time.perf_counter() - load.t0)))
            finally:
                load.stop.set()
                for t in threads:
                    t.join(timeout=90)
            seconds = time.perf_counter() - load.t0
        answers = load.answers
        result["seconds"] = round(seconds, 1)
        result["restart"] = restart
        result["kinds"] = summarise(answers, seconds)
        failures = [
            a
            for a in answers
            if not isinstance(a.status, int) or (a.status >= 500 and a.status != 503)
        ]
        only503 = [a for a in answers if a.status == 503]
        result["failures"] = len(failures)
        result["failure_kinds"] = dict(Counter(f"{a.kind} {a.status}" for a in failures))
        result["503"] = {
            "count": len(only503),
            "first_s": round(min((a.started for a in only503), default=0), 2),
            "last_s": round(max((a.started for a in only503), default=0), 2),
        }
        result["total_req_s"] = round(len(answers) / seconds, 1)
        log("consistency check ...")
        result["consistency"] = consistency(url, args.count, writers)
        print(report(result))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as fh:
            fh.write(json.dumps(result, default=str) + "\n")
        return 0 if result["consistency"]["ok"] and not failures else 1
    finally:
        cluster.destroy()


def report(r: dict[str, Any]) -> str:
    lines = [
        f"load run: {r['seconds']} s, {r['readers']} readers + {r['writers']} writers, "
        f"{r['count']} licences, restart {r['restart'] or 'none'}",
        "",
        "| kind | requests | req/s | p50 ms | p95 ms | p99 ms | statuses |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for kind, k in r["kinds"].items():
        st = ", ".join(f"{s}: {n}" for s, n in k["status"].items())
        lines.append(
            f"| {kind} | {k['requests']} | {k['req_s']} | {k['p50_ms']} | {k['p95_ms']} | "
            f"{k['p99_ms']} | {st} |"
        )
    lines += [
        "",
        f"total {r['total_req_s']} req/s; failures (5xx other than 503, transport errors): "
        f"{r['failures']} {r['failure_kinds']}; 503: {r['503']}",
        f"consistency: {json.dumps(r['consistency'])}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
