"""Benchmark of the licence register: bulk import through the CLI, paging through the API.

Run from the repository root::

    .venv/bin/python bench/register_bench.py --count 100000

What it does, all on this machine and all thrown away at the end:

1. starts its own PostGIS (:class:`cadastre.db.cluster.LocalCluster` in a temporary
   directory, durable, on a free 127.0.0.1 port);
2. writes N synthetic licences (deterministic for a given ``--count`` and ``--seed``) to a
   GeoJSON or GeoPackage file: valid polygons, each well inside one province;
3. for each of ``--runs`` import runs: creates a fresh database, migrates it, loads the
   provinces (not timed), then times ``cadastre import licences FILE`` as a subprocess
   (wall clock, process start to exit);
4. starts ``cadastre serve`` on a free port against the last imported database and pages
   through ``GET /licences?limit=1000`` following the ``next`` links with httpx until all N
   features are read: once straight after the import, then (after ``VACUUM ANALYZE``)
   ``--passes`` times, timing each page (request sent to the whole body received);
5. stops the server and the cluster (also on failure or Ctrl-C), prints a markdown table and
   appends one JSON line to ``bench/results/register.jsonl``.

Budgets (from the issue): an import of 100,000 licences under 60 s on 2 cores; a page of
1,000 features under 100 ms median.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import shape
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cadastre.db.cluster import LocalCluster, find_pg_bin  # noqa: E402
from cadastre.db.engine import make_engine  # noqa: E402
from cadastre.db.jurisdictions import load_jurisdictions  # noqa: E402
from cadastre.db.migrate import upgrade  # noqa: E402

PROVINCES_FILE = ROOT / "sample_data" / "pakistan_admin1_provinces.geojson"
RESULTS = ROOT / "bench" / "results" / "register.jsonl"
VENV_BIN = Path(sys.executable).parent
CADASTRE = VENV_BIN / "cadastre"

BUDGET_IMPORT_S_PER_100K = 60.0
BUDGET_PAGE_MEDIAN_MS = 100.0

#: Licence types with their share and the range of the polygon "radius" in degrees.
TYPES = {
    "exploration_licence": (0.30, 0.010, 0.030),
    "prospecting_licence": (0.15, 0.006, 0.020),
    "mining_lease": (0.15, 0.004, 0.020),
    "small_scale_mining_lease": (0.25, 0.003, 0.008),
    "reconnaissance_licence": (0.05, 0.020, 0.030),
    "mineral_deposit_retention_licence": (0.10, 0.006, 0.015),
}
MAX_RADIUS_DEG = 0.03
CLEARANCE_DEG = 0.04  # > MAX_RADIUS_DEG: every shape lies inside its province
MINERALS = np.array(
    ["Coal", "Chromite", "Marble", "Granite", "Copper; Gold", "Rock salt; Gypsum", "Limestone"]
)
HOLDERS = np.array([f"Benchmark Holder {i:03d} (Pvt) Ltd" for i in range(300)])
VERTEX_COUNTS = (4, 6, 8, 12, 16)  # irregular polygons; rectangles have 4 corners
SHARE_RECTANGLE = 0.5


# ---------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# --------------------------------------------------------------------- the data


def _province_frames() -> list[tuple[str, Any, float]]:
    """(name, province shrunk by the clearance, planar area) for each province."""
    out = []
    for f in json.loads(PROVINCES_FILE.read_text())["features"]:
        inner = shape(f["geometry"]).buffer(-CLEARANCE_DEG, quad_segs=4)
        if inner.is_empty:
            continue
        shapely.prepare(inner)
        out.append((f["properties"]["province"], inner, inner.area))
    return sorted(out, key=lambda t: t[0])


def _points_in(rng: np.random.Generator, geom: Any, n: int) -> np.ndarray:
    x0, y0, x1, y1 = geom.bounds
    got: list[np.ndarray] = []
    have = 0
    while have < n:
        m = max(1024, 2 * (n - have))
        xy = np.column_stack([rng.uniform(x0, x1, m), rng.uniform(y0, y1, m)])
        keep = xy[shapely.contains_xy(geom, xy[:, 0], xy[:, 1])]
        got.append(keep)
        have += len(keep)
    return np.concatenate(got)[:n] if got else np.empty((0, 2))


def _shapes(rng: np.random.Generator, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """One valid, counter-clockwise polygon per centre, no vertex farther than its radius."""
    n = len(centres)
    geoms = np.empty(n, dtype=object)
    rect = rng.random(n) < SHARE_RECTANGLE
    kinds = np.where(rect, 0, rng.choice(VERTEX_COUNTS, size=n))
    for k in np.unique(kinds):
        idx = np.flatnonzero(kinds == k)
        c, r = centres[idx], radii[idx][:, None]
        if k == 0:  # rectangle, aspect 1:2 .. 2:1, inscribed in the radius
            a = rng.uniform(np.pi / 6, np.pi / 3, len(idx))[:, None]
            hw, hh = r * np.cos(a), r * np.sin(a)
            dx = np.hstack([-hw, hw, hw, -hw, -hw])
            dy = np.hstack([-hh, -hh, hh, hh, -hh])
        else:  # star-shaped: sorted angles with gaps < pi, radii 0.4..1 of r
            step = 2 * np.pi / k
            ang = (np.arange(k) + rng.uniform(0, 0.8, (len(idx), k))) * step
            rad = r * rng.uniform(0.4, 1.0, (len(idx), k))
            dx, dy = rad * np.cos(ang), rad * np.sin(ang)
            dx, dy = np.hstack([dx, dx[:, :1]]), np.hstack([dy, dy[:, :1]])
        coords = np.stack([c[:, :1] + dx, c[:, 1:] + dy], axis=-1).round(6)
        geoms[idx] = shapely.polygons(coords)
    return geoms


def make_licences(count: int, seed: int) -> gpd.GeoDataFrame:
    """``count`` synthetic licences, deterministic for (count, seed)."""
    rng = np.random.default_rng(seed)
    provinces = _province_frames()
    areas = np.array([a for _, _, a in provinces])
    per_province = rng.multinomial(count, areas / areas.sum())
    centres, names = [], []
    for (name, inner, _), n in zip(provinces, per_province, strict=True):
        centres.append(_points_in(rng, inner, int(n)))
        names += [name] * int(n)
    xy = np.concatenate(centres)
    order = rng.permutation(count)  # register order is not spatial
    xy, province = xy[order], np.array(names)[order]
    keys = list(TYPES)
    weights = np.array([TYPES[k][0] for k in keys])
    type_idx = rng.choice(len(keys), size=count, p=weights / weights.sum())
    lo = np.array([TYPES[k][1] for k in keys])[type_idx]
    hi = np.array([TYPES[k][2] for k in keys])[type_idx]
    radii = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    geoms = _shapes(rng, xy, radii)
    granted = rng.random(count) < 0.4
    base = date(2010, 1, 1)
    applied_days = rng.integers(0, 5800, count)
    grant_delay = rng.integers(30, 400, count)
    term_days = rng.choice([3 * 365, 5 * 365, 10 * 365], size=count)

    def iso(days: np.ndarray, mask: np.ndarray) -> list[str | None]:
        return [
            (base + timedelta(days=int(d))).isoformat() if m else None
            for d, m in zip(days, mask, strict=True)
        ]

    everyone = np.ones(count, dtype=bool)
    frame = gpd.GeoDataFrame(
        {
            "licence_type": np.array(keys)[type_idx],
            "minerals": MINERALS[rng.integers(0, len(MINERALS), count)],
            "holder": HOLDERS[np.minimum(rng.zipf(1.3, count) - 1, len(HOLDERS) - 1)],
            "province": province,
            "status": np.where(granted, "granted", "applied"),
            "applied_on": iso(applied_days, everyone),
            "granted_on": iso(applied_days + grant_delay, granted),
            "expires_on": iso(applied_days + grant_delay + term_days, granted),
            "remarks": [f"benchmark licence {i}" for i in range(count)],
        },
        geometry=gpd.GeoSeries(geoms),
        crs="EPSG:4326",
    )
    bad = int((~shapely.is_valid(frame.geometry.to_numpy())).sum())
    if bad:
        raise RuntimeError(f"generator produced {bad} invalid polygons")
    return frame


def write_file(frame: gpd.GeoDataFrame, path: Path) -> None:
    driver = "GPKG" if path.suffix == ".gpkg" else "GeoJSON"
    opts = {"layer": "licences"} if driver == "GPKG" else {"COORDINATE_PRECISION": 6}
    frame.to_file(path, driver=driver, engine="pyogrio", **opts)


# -------------------------------------------------------------------- databases


def prepare_database(cluster: LocalCluster, name: str) -> str:
    cluster.create_database(name)
    url = cluster.url(name)
    upgrade(url)
    engine = make_engine(url, pool_size=1)
    provinces = json.loads(PROVINCES_FILE.read_text())["features"]
    with engine.begin() as conn:
        load_jurisdictions(conn, provinces, source="bench: geoBoundaries ADM1")
    engine.dispose()
    return url


def drop_database(cluster: LocalCluster, name: str) -> None:
    engine = create_engine(cluster.url("postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def count_licences(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM licences")).scalar_one())
    engine.dispose()
    return n


def vacuum_analyze(url: str) -> None:
    """What autovacuum would do after a bulk load, done now so that it does not run mid-pass."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM (ANALYZE)"))
    engine.dispose()


def server_versions(url: str) -> dict[str, str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        pg = conn.execute(text("SHOW server_version")).scalar_one()
        gis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
    engine.dispose()
    return {"postgresql": str(pg), "postgis": str(gis)}


# ------------------------------------------------------------------ measurements


def time_import(path: Path, url: str, log_file: Path) -> float:
    env = {**os.environ, "CADASTRE_DATABASE_URL": url}
    started = time.perf_counter()
    with log_file.open("w") as fh:
        proc = subprocess.run(
            [str(CADASTRE), "import", "licences", str(path)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=False,
        )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        tail = log_file.read_text()[-3000:]
        raise RuntimeError(f"import failed (exit {proc.returncode}):\n{tail}")
    return elapsed


@contextlib.contextmanager
def process(cmd: list[str], env: dict[str, str], health: str, log_file: Path) -> Iterator[None]:
    """Run ``cmd`` until the block ends; wait (60 s at most) until ``health`` answers 200."""
    fh = log_file.open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log_file.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(health, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{health} did not answer within 60 s")
            time.sleep(0.2)
        yield
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        fh.close()


@contextlib.contextmanager
def serving(url: str, port: int, log_file: Path) -> Iterator[str]:
    """``cadastre serve`` on ``port`` over the database at ``url``; yields its base URL."""
    base = f"http://127.0.0.1:{port}"
    cmd = [str(CADASTRE), "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "CADASTRE_DATABASE_URL": url}
    with process(cmd, env, f"{base}/health", log_file):
        yield base


def page_through(base: str, count: int, limit: int) -> tuple[list[float], float, int]:
    """One pass over the whole register; returns per-page latencies (ms), total (s), pages."""
    latencies: list[float] = []
    seen = 0
    last_id = -1
    url: str | None = f"{base}/licences?limit={limit}"
    with httpx.Client(timeout=120) as client:
        started = time.perf_counter()
        while url:
            t0 = time.perf_counter()
            r = client.get(url)
            latencies.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            body = r.json()
            feats = body["features"]
            if feats:
                if feats[0]["id"] <= last_id:
                    raise RuntimeError("pages out of order")
                last_id = feats[-1]["id"]
            seen += len(feats)
            url = next((ln["href"] for ln in body["links"] if ln["rel"] == "next"), None)
        total = time.perf_counter() - started
    if seen != count:
        raise RuntimeError(f"paged through {seen} features, expected {count}")
    return latencies, total, len(latencies)


# ------------------------------------------------------------------------ report


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem_gib = round(kb / 1024 / 1024, 1)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "commit": commit or None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="licences to generate")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--runs", type=int, default=1, help="import runs (fresh DB each)")
    parser.add_argument("--passes", type=int, default=3, help="paging passes over the register")
    parser.add_argument("--limit", type=int, default=1000, help="page size")
    parser.add_argument("--format", choices=("geojson", "gpkg"), default="geojson")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON-lines results file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (not the server)")
    parser.add_argument("--label", default="", help="free text stored with the result")
    args = parser.parse_args(argv)

    # SIGTERM/SIGHUP unwind like Ctrl-C, so that the finally blocks stop server and cluster.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))

    work = Path(tempfile.mkdtemp(prefix="cadastre-bench-"))
    work.chmod(0o755)  # the server may run as the postgres user (when we are root)
    cluster = LocalCluster(work / "pg", free_port(), listen="127.0.0.1", durable=True)
    result: dict[str, Any] = {
        "bench": "register",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": args.count,
        "seed": args.seed,
        "format": args.format,
        "label": args.label,
        "machine": machine(),
    }
    try:
        log(f"work dir {work}; PostgreSQL from {find_pg_bin()}")
        t0 = time.perf_counter()
        frame = make_licences(args.count, args.seed)
        gen_s = time.perf_counter() - t0
        data = work / f"licences_{args.count}.{args.format}"
        t0 = time.perf_counter()
        write_file(frame, data)
        write_s = time.perf_counter() - t0
        vertices = int(shapely.get_num_coordinates(frame.geometry.to_numpy()).sum())
        result["dataset"] = {
            "generate_s": round(gen_s, 2),
            "write_s": round(write_s, 2),
            "bytes": data.stat().st_size,
            "vertices": vertices,
            "by_province": pd.Series(frame["province"]).value_counts().to_dict(),
        }
        log(
            f"{args.count} licences ({vertices} vertices) generated in {gen_s:.1f} s, "
            f"{data.name} {data.stat().st_size / 1e6:.1f} MB written in {write_s:.1f} s"
        )
        del frame

        cluster.start()
        log(f"PostGIS on 127.0.0.1:{cluster.port} ({cluster.root})")
        imports: list[float] = []
        url = ""
        previous = None
        for run in range(args.runs):
            name = f"bench_{run}"
            url = prepare_database(cluster, name)
            if previous:
                drop_database(cluster, previous)
            log(f"import run {run + 1}/{args.runs} into {name} ...")
            elapsed = time_import(data, url, work / f"import_{run}.log")
            n = count_licences(url)
            if n != args.count:
                raise RuntimeError(f"import wrote {n} licences, expected {args.count}")
            imports.append(elapsed)
            log(f"  {elapsed:.1f} s ({args.count / elapsed:,.0f} licences/s)")
            previous = name
        result["versions"] = server_versions(url)
        result["import_s"] = {
            "runs": [round(x, 2) for x in imports],
            "best": round(min(imports), 2),
            "median": round(statistics.median(imports), 2),
        }

        port = free_port()
        with serving(url, port, work / "serve.log") as base:
            log(f"cadastre serve on {base}")
            # First pass straight after the import, as a user would meet the register: the
            # tables are not vacuumed yet (hint bits, visibility map), autovacuum may be busy.
            lat, total, pages = page_through(base, args.count, args.limit)
            result["paging_after_import"] = {
                "total_s": round(total, 2),
                "pages": pages,
                "median_ms": round(statistics.median(lat), 1),
                "p95_ms": round(percentile(lat, 95), 1),
            }
            log(
                f"  pass right after import: {pages} pages in {total:.1f} s, median "
                f"{statistics.median(lat):.1f} ms, p95 {percentile(lat, 95):.1f} ms"
            )
            t0 = time.perf_counter()
            vacuum_analyze(url)
            result["vacuum_analyze_s"] = round(time.perf_counter() - t0, 2)
            log(f"  VACUUM ANALYZE in {result['vacuum_analyze_s']:.1f} s")
            passes = []
            all_pages: list[float] = []
            for p in range(args.passes):
                lat, total, pages = page_through(base, args.count, args.limit)
                passes.append(
                    {
                        "total_s": round(total, 2),
                        "pages": pages,
                        "median_ms": round(statistics.median(lat), 1),
                        "p95_ms": round(percentile(lat, 95), 1),
                        "max_ms": round(max(lat), 1),
                    }
                )
                all_pages += lat
                log(
                    f"  pass {p + 1}/{args.passes}: {pages} pages in {total:.1f} s, "
                    f"median {statistics.median(lat):.1f} ms, p95 {percentile(lat, 95):.1f} ms"
                )
        result["paging"] = {
            "limit": args.limit,
            "passes": passes,
            "median_ms": round(statistics.median(all_pages), 1),
            "p95_ms": round(percentile(all_pages, 95), 1),
            "total_s_median": round(statistics.median(p["total_s"] for p in passes), 2),
        }
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    # 60 s for 100,000 licences, scaled up for larger files (not down: a small import still
    # pays the fixed cost of starting Python and reading the file).
    budget_import = BUDGET_IMPORT_S_PER_100K * max(1.0, args.count / 100_000)
    result["budget"] = {
        "import_s": budget_import,
        "import_ok": result["import_s"]["median"] <= budget_import,
        "page_median_ms": BUDGET_PAGE_MEDIAN_MS,
        "page_ok": result["paging"]["median_ms"] <= BUDGET_PAGE_MEDIAN_MS,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        fh.write(json.dumps(result, sort_keys=True) + "\n")
    print(report(result))
    return 0


def report(r: dict[str, Any]) -> str:
    imp, pg, b = r["import_s"], r["paging"], r["budget"]
    cold = r["paging_after_import"]
    ok = {True: "ok", False: "**over budget**"}
    rows = [
        f"Register benchmark: {r['count']:,} licences ({r['format']}), "
        f"{r['machine']['cpus']} CPUs, PostgreSQL {r['versions']['postgresql']} / "
        f"PostGIS {r['versions']['postgis']}",
        "",
        "| measurement | median | best / p95 | budget | |",
        "|---|---:|---:|---:|---|",
        f"| `cadastre import licences` wall clock (s), {len(imp['runs'])} run(s) | "
        f"{imp['median']:.1f} | {imp['best']:.1f} | {b['import_s']:.0f} | {ok[b['import_ok']]} |",
        f"| import throughput (licences/s) | {r['count'] / imp['median']:,.0f} | | | |",
        f"| `GET /licences?limit={pg['limit']}` per page (ms), {len(pg['passes'])} passes | "
        f"{pg['median_ms']:.1f} | p95 {pg['p95_ms']:.1f} | {b['page_median_ms']:.0f} | "
        f"{ok[b['page_ok']]} |",
        f"| full paging pass (s), {pg['passes'][0]['pages']} pages | "
        f"{pg['total_s_median']:.1f} | | | |",
        f"| first pass right after the import, per page (ms) | {cold['median_ms']:.1f} | "
        f"p95 {cold['p95_ms']:.1f} | | |",
        f"| first pass right after the import, total (s) | {cold['total_s']:.1f} | | | |",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
