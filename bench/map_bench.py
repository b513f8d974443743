#!/usr/bin/env python3
"""Map serving benchmark: MVT tiles and GeoJSON bbox pages, this service vs tipg vs the SQL.

    .venv/bin/python bench/map_bench.py --count 100000            # 15 s x 3 runs (~40 min)
    .venv/bin/python bench/map_bench.py --count 100000 --duration 6 --runs 3
    .venv/bin/python bench/map_bench.py --harness /work/shared/bench ...

One throw-away PostGIS (``cadastre.db.cluster.LocalCluster``, as ``register_bench.py``),
N synthetic licences from ``register_bench.make_licences`` loaded with
``cadastre import licences``, then ``VACUUM (ANALYZE)``. Served three ways on 127.0.0.1:

* ``ours-cold``  ``api.app:create_app`` under uvicorn (1 worker, access log off: what
  ``cadastre serve`` runs) with a tile cache that keeps nothing, so every tile is made by
  PostGIS (the code path of a cache miss; nothing else differs);
* ``ours-warm``  ``cadastre serve`` itself; every tile of the list is fetched once before
  measuring, so every measured tile is a cache hit;
* ``tipg``       developmentseed tipg, installed and started by the side-by-side harness
  (``run_tipg.sh``), serving the view ``public.bench_map_licences`` over the same current
  licence versions (id, geom, and the attributes pg_limit.py expects).

The load and the PostGIS ceiling come from the side-by-side harness, called as scripts
from ``--harness`` (default ``../shared/bench`` next to this repository, i.e.
``/work/shared/bench``; it is needed only to run this benchmark): ``load.py`` (wrk, request
list derived from the data, drain-to-idle before every measurement) for all three
servers, ``pg_limit.py --sql tipg`` for tipg's SQL straight from PostGIS. Our own SQL
straight from PostGIS (``cadastre.db.tiles.tile`` / ``cadastre.db.features.items`` through
a SQLAlchemy pool, ``concurrency`` threads, no HTTP) is measured here (``ours-sql``).

Every measurement is bounded by ``--duration`` and ``--max-requests``. Results are appended
as JSON lines to ``bench/results/map.jsonl``; a markdown table and the goal verdicts are
printed. The cluster, both servers and tipg are stopped at the end (also on errors/signals).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import create_engine, text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import register_bench as rb  # noqa: E402  (also puts the repository root on sys.path)

from cadastre.db.cluster import SERVICE_USER, LocalCluster  # noqa: E402

ROOT = HERE.parent
DEFAULT_HARNESS = ROOT.parent / "shared" / "bench"
RESULTS = HERE / "results" / "map.jsonl"
VIEW = "bench_map_licences"
DB = "map"

# tipg (and pg_limit.py --sql tipg) see the same current licence versions our service serves.
VIEW_SQL = """
CREATE OR REPLACE VIEW public.bench_map_licences AS
SELECT v.licence_id AS id, v.geom,
       round(v.area_km2::numeric, 3)::float8 AS area_km2, v.expires_on, v.granted_on,
       p.name AS holder, v.licence_no, v.licence_type,
       array_to_string(v.minerals, '; ') AS mineral, v.province_code AS province, v.status
FROM licence_versions v JOIN parties p ON p.id = v.holder_id
WHERE v.valid_to IS NULL
"""


def log(msg: str) -> None:
    print(f"[map_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------- servers
def serve_nocache(port: int) -> None:
    """``cadastre serve`` with a tile cache that keeps nothing (every tile a miss)."""
    import uvicorn

    from api.app import create_app
    from api.caching import TileCache

    app = create_app()
    # -1, not 0: a 0-byte cache would still keep empty tiles (len(b"") <= 0)
    app.state.tile_cache = TileCache(max_bytes=-1)
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False)


@contextlib.contextmanager
def tipg(harness: Path, pg_url: str, port: int, rundir: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "TIPG_PORT": str(port),
        "TIPG_RUNDIR": str(rundir),
        # run_tipg.sh waits for public.licences; we measure the view
        "TIPG_DB_TABLES": json.dumps(["public.licences", f"public.{VIEW}"]),
    }
    try:
        subprocess.run([str(harness / "run_tipg.sh"), "start"], env=env, check=True, timeout=600)
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run([str(harness / "run_tipg.sh"), "stop"], env=env, timeout=60, check=False)


# ------------------------------------------------------------------ workload
def request_lists(
    harness: Path, pg_url: str, zooms: list[int], points: int
) -> dict[Any, list[str]]:
    """The harness's request lists (paths with our URL templates), per zoom and 'bbox'."""
    base = "http://127.0.0.1:1"
    common = ["--db", pg_url, "--table", VIEW, "--points", str(points), "--print"]
    out: dict[Any, list[str]] = {}
    for z in zooms:
        p = subprocess.run(
            [
                str(harness / "py"),
                str(harness / "load.py"),
                "tiles",
                "--url",
                base + "/tiles/licences/{z}/{x}/{y}.mvt",
                "--zooms",
                str(z),
                *common,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        out[z] = [ln[len(base) :] for ln in p.stdout.split()]
    p = subprocess.run(
        [
            str(harness / "py"),
            str(harness / "load.py"),
            "bbox",
            "--url",
            base + "/collections/licences/items?bbox={bbox}&limit={limit}",
            *common,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    out["bbox"] = [ln[len(base) :] for ln in p.stdout.split()]
    return out


def tipg_path(path: str) -> str:
    if path.startswith("/tiles/licences/"):
        z, x, y = path[len("/tiles/licences/") : -len(".mvt")].split("/")
        return f"/collections/public.{VIEW}/tiles/WebMercatorQuad/{z}/{x}/{y}"
    return path.replace("/collections/licences/", f"/collections/public.{VIEW}/")


def fetch_sizes(base: str, paths: list[str], to_tipg: bool) -> dict[str, Any]:
    """GET every distinct path once (fills our cache); body sizes averaged over the list."""
    sizes: dict[str, int] = {}
    status: dict[int, int] = defaultdict(int)
    with httpx.Client(timeout=120) as c:
        for p in dict.fromkeys(paths):
            r = c.get(base + (tipg_path(p) if to_tipg else p))
            status[r.status_code] += 1
            sizes[p] = len(r.content)
    vals = [sizes[p] for p in paths]
    return {
        "avg_bytes": round(statistics.mean(vals)),
        "max_bytes": max(vals),
        "distinct": len(sizes),
        "status": dict(status),
    }


def same_features(ours: str, theirs: str, paths: list[str], n: int) -> list[dict[str, Any]]:
    """Ids of the first n bbox pages from both servers (sorted), and whether they agree."""
    out = []
    with httpx.Client(timeout=120) as c:
        for p in paths[:n]:
            a = c.get(ours + p).json()
            b = c.get(theirs + tipg_path(p)).json()
            ia = sorted(int(f["id"]) for f in a["features"])
            ib = sorted(int(f["id"]) for f in b["features"])
            out.append(
                {
                    "bbox": parse_qs(urlsplit(p).query)["bbox"][0],
                    "ours": len(ia),
                    "tipg": len(ib),
                    "ours_matched": a.get("numberMatched"),
                    "tipg_matched": b.get("numberMatched"),
                    "same_ids": ia == ib,
                }
            )
    return out


# ------------------------------------------------------------------ measuring
def run_load(
    harness: Path,
    pg_url: str,
    base: str,
    kind: str,
    tmpl: str,
    label: str,
    zoom: int | None,
    conc: int,
    run: int,
    a: argparse.Namespace,
    out: Path,
) -> None:
    cmd = [
        str(harness / "py"),
        str(harness / "load.py"),
        kind,
        "--url",
        base + tmpl,
        "--db",
        pg_url,
        "--table",
        VIEW,
        "--points",
        str(a.points),
        "--label",
        label,
        "--concurrency",
        str(conc),
        "--duration",
        str(a.duration),
        "--runs",
        "1",
        "--run-index",
        str(run),
        "--warmup",
        "0",
        "--max-requests",
        str(a.max_requests),
        "--idle-url",
        base + "/",
        "--idle-timeout",
        "120",
        "--out",
        str(out),
    ]
    if zoom is not None:
        cmd += ["--zooms", str(zoom)]
    subprocess.run(cmd, check=True, timeout=a.duration + 400)


def run_pg_limit(
    harness: Path,
    pg_url: str,
    kind: str,
    zoom: int | None,
    conc: int,
    run: int,
    a: argparse.Namespace,
    tipg_base: str,
    out: Path,
) -> None:
    cmd = [
        str(harness / "py"),
        str(harness / "pg_limit.py"),
        kind,
        "--sql",
        "tipg",
        "--db",
        pg_url,
        "--table",
        VIEW,
        "--points",
        str(a.points),
        "--label",
        "tipg-sql",
        "--concurrency",
        str(conc),
        "--duration",
        str(a.duration),
        "--runs",
        "1",
        "--run-index",
        str(run),
        "--warmup",
        "0",
        "--max-requests",
        str(a.max_requests),
        "--base-url",
        tipg_base,
        "--idle-url",
        tipg_base + "/",
        "--out",
        str(out),
    ]
    if zoom is not None:
        cmd += ["--zooms", str(zoom)]
    subprocess.run(cmd, check=True, timeout=a.duration + 400)


def wait_db_idle(engine: Any, timeout: float = 120.0) -> float:
    t0 = time.perf_counter()
    with engine.connect() as conn:
        while time.perf_counter() - t0 < timeout:
            busy = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state <> 'idle' AND backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            if busy == 0:
                break
            time.sleep(0.25)
    return round(time.perf_counter() - t0, 2)


def ours_sql(url: str, paths: list[str], conc: int, a: argparse.Namespace) -> dict[str, Any]:
    """Our tile / items SQL straight from PostGIS: `conc` threads over a pool of `conc`."""
    from cadastre.db import features, tiles
    from cadastre.db.engine import make_engine

    hc = harness_common(a)
    engine = make_engine(url, pool_size=conc)
    coll = features.get_collection("licences")
    jobs = []
    for p in paths:
        if p.startswith("/tiles/"):
            z, x, y = (int(v) for v in p[len("/tiles/licences/") : -len(".mvt")].split("/"))
            jobs.append(("t", (z, x, y)))
        else:
            b = tuple(float(v) for v in parse_qs(urlsplit(p).query)["bbox"][0].split(","))
            jobs.append(("b", features.ItemsQuery(bbox=b, limit=a.limit)))  # type: ignore[arg-type]
    drained = wait_db_idle(engine)
    lat: list[float] = []
    nbytes = [0]
    errors = [0]
    count = [0]
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + a.duration

    def worker(w: int) -> None:
        i = w * len(jobs) // conc
        mine: list[float] = []
        b = 0
        while time.perf_counter() < deadline:
            with lock:
                if count[0] >= a.max_requests:
                    break
                count[0] += 1
            kind, arg = jobs[i % len(jobs)]
            i += 1
            t0 = time.perf_counter()
            try:
                with engine.begin() as conn:
                    if kind == "t":
                        b += len(tiles.tile(conn, "licences", *arg) or b"")
                    else:
                        b += len(features.items(conn, coll, arg).features_json)
            except Exception as ex:
                with lock:
                    errors[0] += 1
                print(f"ours-sql error: {ex}", file=sys.stderr)
                continue
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)
            nbytes[0] += b

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res = hc.summarize(lat, time.perf_counter() - start, nbytes[0], errors[0])
    engine.dispose()
    return {**res, "drain_wait_s": drained}


def harness_common(a: argparse.Namespace) -> Any:
    """The harness's common.py (percentiles, summary, JSON line), imported from --harness."""
    if str(a.harness) not in sys.path:
        sys.path.append(str(a.harness))
    import common  # type: ignore[import-not-found]

    return common


# ------------------------------------------------------------------- report
TARGETS = ("ours-cold", "tipg", "ours-warm", "ours-sql", "tipg-sql")


def medians(recs: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        cells[(r["kind"], r.get("zoom"), r["concurrency"], r["target"])].append(r)
    out = {}
    for k, rs in cells.items():

        def m(f: str, rs: list[dict[str, Any]] = rs) -> float | None:
            v = [r[f] for r in rs if r.get(f) is not None]
            return statistics.median(v) if v else None

        out[k] = {
            "rps": m("rps"),
            "p50": m("p50_ms"),
            "p95": m("p95_ms"),
            "p99": m("p99_ms"),
            "runs": len(rs),
            "errors": sum(r.get("errors") or 0 for r in rs),
        }
    return out


def report(
    recs: list[dict[str, Any]], sizes: dict[str, Any], zooms: list[int], concs: list[int]
) -> tuple[str, dict[str, Any]]:
    med = medians(recs)
    f = lambda d, k, p=1: "–" if not d or d.get(k) is None else f"{d[k]:,.{p}f}"  # noqa: E731
    lines = [
        "| request | conc | ours cold req/s | p50 | p95 | p99 | tipg req/s | p50 | p95 | p99 "
        "| **ours/tipg** | ours warm req/s | p50 | p95 | p99 | ours SQL req/s | tipg SQL req/s "
        "| avg size ours | avg size tipg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdict: dict[str, Any] = {}
    rows = [("mvt", z) for z in zooms] + [("geojson", None)]
    for kind, z in rows:
        for c in concs:
            found = {t: med.get((kind, z, c, t)) for t in TARGETS}
            cold, tp, warm = found["ours-cold"], found["tipg"], found["ours-warm"]
            ratio = cold["rps"] / tp["rps"] if cold and tp and tp["rps"] else None
            key = f"z{z}" if kind == "mvt" else "bbox"
            sz = sizes.get(key, {})
            so, st = sz.get("ours", {}), sz.get("tipg", {})
            kb = lambda d: "–" if not d else f"{d['avg_bytes'] / 1024:,.1f} KB"  # noqa: E731
            lines.append(
                f"| {'MVT z' + str(z) if kind == 'mvt' else 'GeoJSON bbox 0.5°, limit 1000'} | {c} "
                f"| {f(cold, 'rps')} | {f(cold, 'p50')} | {f(cold, 'p95')} | {f(cold, 'p99')} "
                f"| {f(tp, 'rps')} | {f(tp, 'p50')} | {f(tp, 'p95')} | {f(tp, 'p99')} "
                f"| **{'–' if ratio is None else f'{ratio:.1f}×'}** "
                f"| {f(warm, 'rps')} | {f(warm, 'p50')} | {f(warm, 'p95')} | {f(warm, 'p99')} "
                f"| {f(found['ours-sql'], 'rps')} | {f(found['tipg-sql'], 'rps')} "
                f"| {kb(so)} | {kb(st)} |"
            )
            verdict[f"{key}/c{c}"] = {
                "ratio": None if ratio is None else round(ratio, 2),
                "cold_p95": cold and cold["p95"],
                "warm_rps": warm and warm["rps"],
                "errors": sum((found[t] or {}).get("errors", 0) for t in TARGETS),
                "ours_max_bytes": so.get("max_bytes"),
                "ours_avg_bytes": so.get("avg_bytes"),
            }
    return "\n".join(lines), verdict


def goals(verdict: dict[str, Any], zooms: list[int], concs: list[int]) -> list[str]:
    out = []

    def ratio_goal(key: str, need: float) -> None:
        for c in concs:
            v = verdict.get(f"{key}/c{c}", {})
            r = v.get("ratio")
            ok = r is not None and r >= need
            out.append(
                f"{key} c={c}: ours/tipg {r}× (goal ≥ {need}×) → "
                + ("MET" if ok else "NOT MET" + ("" if r is None else f" ({r / need:.0%} of goal)"))
            )

    for z in (11, 14):
        if z in zooms:
            ratio_goal(f"z{z}", 4)
    ratio_goal("bbox", 4)
    for z in (5, 8):
        if z in zooms:
            ratio_goal(f"z{z}", 10)
            v = verdict.get(f"z{z}/c{concs[0]}", {})
            mx = v.get("ours_max_bytes")
            out.append(
                f"z{z} tiles < 500 KB: largest {mx and round(mx / 1024, 1)} KB, average "
                f"{v.get('ours_avg_bytes') and round(v['ours_avg_bytes'] / 1024, 1)} KB → "
                f"{'MET' if mx is not None and mx < 500 * 1024 else 'NOT MET'}"
            )
    if 14 in zooms and 8 in concs:
        p = verdict.get("z14/c8", {}).get("cold_p95")
        out.append(
            f"z14 p95 at c=8 (cold): {p} ms (goal < 20 ms) → "
            f"{'MET' if p is not None and p < 20 else 'NOT MET'}"
        )
    for z in zooms:
        for c in concs:
            w = verdict.get(f"z{z}/c{c}", {}).get("warm_rps")
            out.append(
                f"warm z{z} c={c}: {w} tiles/s (goal ≥ 2,000) → "
                f"{'MET' if w is not None and w >= 2000 else 'NOT MET'}"
            )
    return out


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--zooms", default="5,8,11,14")
    ap.add_argument("--concurrency", default="8,32")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs (medians reported)")
    ap.add_argument(
        "--ceiling-runs", type=int, default=1, help="runs that also measure the SQL ceilings"
    )
    ap.add_argument("--points", type=int, default=500, help="requests per list (harness default)")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--max-requests", type=int, default=200_000, help="cap per measurement")
    ap.add_argument(
        "--harness",
        type=Path,
        default=DEFAULT_HARNESS,
        help=f"side-by-side harness dir (default {DEFAULT_HARNESS})",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--label", default="")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    a = ap.parse_args(argv)
    a.harness = a.harness.resolve()
    for need in ("load.py", "pg_limit.py", "run_tipg.sh", "py", "common.py"):
        if not (a.harness / need).exists():
            ap.error(f"--harness {a.harness}: no {need}")
    zooms = [int(v) for v in a.zooms.split(",")]
    concs = [int(v) for v in a.concurrency.split(",")]
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))

    run_id = uuid.uuid4().hex[:12]
    work = Path(tempfile.mkdtemp(prefix="cadastre-mapbench-"))
    work.chmod(0o755)
    raw = work / "raw.jsonl"
    cluster = LocalCluster(work / "pg", rb.free_port(), listen="127.0.0.1", durable=True)
    meta: dict[str, Any] = {
        "bench": "map",
        "run_id": run_id,
        "count": a.count,
        "seed": a.seed,
        "duration_s": a.duration,
        "runs": a.runs,
        "label": a.label,
        "command": " ".join(
            [
                ".venv/bin/python",
                "bench/map_bench.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        t0 = time.perf_counter()
        frame = rb.make_licences(a.count, a.seed)
        data = work / f"licences_{a.count}.geojson"
        rb.write_file(frame, data)
        del frame
        log(f"{a.count} licences generated + written in {time.perf_counter() - t0:.1f} s")
        cluster.start()
        url = rb.prepare_database(cluster, DB)
        imp = rb.time_import(data, url, work / "import.log")
        n = rb.count_licences(url)
        if n != a.count:
            raise RuntimeError(f"import wrote {n} licences, expected {a.count}")
        rb.vacuum_analyze(url)
        log(f"cadastre import licences: {imp:.1f} s; VACUUM ANALYZE done")
        eng = create_engine(url, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text(VIEW_SQL))
        pg_url = f"postgresql://{SERVICE_USER}@127.0.0.1:{cluster.port}/{DB}"
        meta["versions"] = rb.server_versions(url)
        meta["machine"] = rb.machine()
        meta["import_s"] = round(imp, 2)

        lists = request_lists(a.harness, pg_url, zooms, a.points)
        env = {**os.environ, "CADASTRE_DATABASE_URL": url}
        p_cold, p_warm, p_tipg = rb.free_port(), rb.free_port(), rb.free_port()
        cold, warm = f"http://127.0.0.1:{p_cold}", f"http://127.0.0.1:{p_warm}"
        with (
            rb.process(
                [sys.executable, str(Path(__file__).resolve()), "--serve-nocache", str(p_cold)],
                env,
                cold + "/health",
                work / "cold.log",
            ),
            rb.process(
                [str(rb.CADASTRE), "serve", "--host", "127.0.0.1", "--port", str(p_warm)],
                env,
                warm + "/health",
                work / "warm.log",
            ),
            tipg(a.harness, pg_url, p_tipg, work / "tipg") as tbase,
        ):
            log(f"ours cold {cold}, ours warm {warm}, tipg {tbase}")
            check = same_features(cold, tbase, lists["bbox"], 10)
            meta["same_features_check"] = check
            log(f"bbox id check (first 10 boxes): {check}")
            sizes: dict[str, Any] = {}
            for z in zooms:  # fills ours-warm's cache; sizes of both; warms PostGIS for all
                sizes[f"z{z}"] = {
                    "ours": fetch_sizes(warm, lists[z], False),
                    "tipg": fetch_sizes(tbase, lists[z], True),
                }
                log(f"z{z} sizes {sizes[f'z{z}']}")
            sizes["bbox"] = {
                "ours": fetch_sizes(cold, lists["bbox"], False),
                "tipg": fetch_sizes(tbase, lists["bbox"], True),
            }
            meta["sizes"] = sizes
            tile_t = "/tiles/licences/{z}/{x}/{y}.mvt"
            items_t = "/collections/licences/items?bbox={bbox}&limit={limit}"
            t_tile = f"/collections/public.{VIEW}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}"
            t_items = f"/collections/public.{VIEW}/items?bbox={{bbox}}&limit={{limit}}"
            t_runs = time.perf_counter()
            for run in range(1, a.runs + 1):
                for c in concs:
                    for z in [*zooms, None]:
                        kind = "tiles" if z is not None else "bbox"
                        ours_t, their_t = (tile_t, t_tile) if z is not None else (items_t, t_items)
                        run_load(
                            a.harness, pg_url, cold, kind, ours_t, "ours-cold", z, c, run, a, raw
                        )
                        run_load(a.harness, pg_url, tbase, kind, their_t, "tipg", z, c, run, a, raw)
                        if z is not None:
                            run_load(
                                a.harness,
                                pg_url,
                                warm,
                                kind,
                                ours_t,
                                "ours-warm",
                                z,
                                c,
                                run,
                                a,
                                raw,
                            )
                        if run <= a.ceiling_runs:
                            res = ours_sql(url, lists[z if z is not None else "bbox"], c, a)
                            harness_common(a).emit(
                                {
                                    "target": "ours-sql",
                                    "kind": "mvt" if z is not None else "geojson",
                                    "zoom": z,
                                    "concurrency": c,
                                    "run": run,
                                    "dataset_rows": a.count,
                                    **res,
                                },
                                str(raw),
                            )
                            run_pg_limit(a.harness, pg_url, kind, z, c, run, a, tbase, raw)
                log(f"run {run}/{a.runs} done ({time.perf_counter() - t_runs:.0f} s)")
        recs = []
        for line in raw.read_text().splitlines():
            r = json.loads(line)
            r.update(
                {
                    "bench": "map",
                    "run_id": run_id,
                    "count": a.count,
                    "seed": a.seed,
                    "label": a.label,
                }
            )
            recs.append(r)
        table, verdict = report(recs, meta["sizes"], zooms, concs)
        verdicts = goals(verdict, zooms, concs)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with a.out.open("a") as fh:
            for r in recs:
                fh.write(json.dumps(r) + "\n")
            fh.write(json.dumps({**meta, "summary": verdict, "verdicts": verdicts}) + "\n")
        (work / "report.md").write_text(table + "\n\n" + "\n".join(verdicts) + "\n")
        print(
            f"\n{a.count:,} licences; {a.duration:g} s per measurement, medians of {a.runs} runs\n"
        )
        print(table)
        print()
        print("\n".join(f"* {v}" for v in verdicts))
        print(f"\nraw JSON lines appended to {a.out} (run_id {run_id})")
        return 0
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        if a.keep:
            log(f"kept {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-nocache":
        serve_nocache(int(sys.argv[2]))
    else:
        sys.exit(main())
