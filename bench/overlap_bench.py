"""Benchmark of the overlap engine: the pre-grant check and the province audit.

Run from the repository root::

    .venv/bin/python bench/overlap_bench.py --count 100000
    .venv/bin/python bench/overlap_bench.py --count 1000000

What it does, all on this machine and all thrown away at the end:

1. starts its own PostGIS (:class:`cadastre.db.cluster.LocalCluster` in a temporary
   directory, durable, on a free 127.0.0.1 port);
2. generates N synthetic licences with the generator of ``register_bench.py`` (40 % granted
   with consistent dates, 60 % applied) and loads them with ``cadastre import licences`` —
   in files of ``--chunk`` licences, one import each, when N is larger than that;
3. loads the sample reserved areas, runs ``VACUUM (ANALYZE)``;
4. times ``cadastre.db.overlaps.check`` on one connection for ``--candidates`` random
   candidates (1–100 km² rectangles and irregular polygons centred on random licences), then
   the same candidates through ``POST /overlaps/check`` against ``cadastre serve``;
5. times ``cadastre audit overlaps OUT.csv --province Balochistan`` and the whole-country
   audit (subprocess wall clock);
6. stops the server and the cluster (also on failure or Ctrl-C), prints a markdown table and
   appends one JSON line to ``bench/results/overlaps.jsonl``.

Budgets: check p95 <= 50 ms at 1,000,000 licences; province audit <= 30 s at 100,000.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import shapely
from shapely.geometry import mapping
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from register_bench import (
    CADASTRE,
    ROOT,
    count_licences,
    find_pg_bin,
    free_port,
    log,
    machine,
    make_licences,
    percentile,
    prepare_database,
    server_versions,
    serving,
    time_import,
    vacuum_analyze,
    write_file,
)

from cadastre.db import overlaps
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.db.reserved import load_reserved_areas
from cadastre.rules import RuleBook
from cadastre.settings import Settings

RESERVED_FILE = ROOT / "sample_data" / "reserved_areas_synthetic.geojson"
RESULTS = ROOT / "bench" / "results" / "overlaps.jsonl"

BUDGET_CHECK_P95_MS = 50.0  # at 1,000,000 licences
BUDGET_CHECK_AT = 1_000_000
BUDGET_PROVINCE_AUDIT_S = 30.0  # at 100,000 licences
BUDGET_AUDIT_AT = 100_000
AUDIT_PROVINCE = "Balochistan"
CANDIDATE_TYPE = "exploration_licence"
KM_PER_DEG_LAT = 110.6


# -------------------------------------------------------------------- candidates


def make_candidates(rng: np.random.Generator, centres: np.ndarray, n: int) -> list[Any]:
    """``n`` application-like MultiPolygons, 1–100 km² (log-uniform), on random licences.

    Half are rectangles (aspect 1:2–2:1), half star-shaped polygons with 5–20 vertices,
    scaled to the drawn area in a local km frame, then converted to degrees at their latitude.
    """
    picks = centres[rng.integers(0, len(centres), n)]
    areas = np.exp(rng.uniform(math.log(1.0), math.log(100.0), n))
    out = []
    for (lon, lat), area in zip(picks, areas, strict=True):
        if rng.random() < 0.5:
            aspect = rng.uniform(0.5, 2.0)
            w, h = math.sqrt(area * aspect), math.sqrt(area / aspect)
            xy = np.array([[-w, -h], [w, -h], [w, h], [-w, h], [-w, -h]]) / 2
        else:
            k = int(rng.integers(5, 21))
            ang = (np.arange(k) + rng.uniform(0, 0.8, k)) * (2 * math.pi / k)
            rad = rng.uniform(0.4, 1.0, k)
            xy = np.column_stack([rad * np.cos(ang), rad * np.sin(ang)])
            xy = np.vstack([xy, xy[:1]])
            xy *= math.sqrt(area / shapely.Polygon(xy).area)
        km_per_deg_lon = 111.32 * math.cos(math.radians(lat))
        coords = np.column_stack([lon + xy[:, 0] / km_per_deg_lon, lat + xy[:, 1] / KM_PER_DEG_LAT])
        poly = shapely.Polygon(coords.round(6))
        if not poly.is_valid:  # cannot happen for these shapes; keep the bench honest
            raise RuntimeError("candidate generator produced an invalid polygon")
        out.append(shapely.MultiPolygon([poly]))
    return out


def feature(geom: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": mapping(geom.geoms[0]),
        "properties": {"licence_type": CANDIDATE_TYPE, "minerals": ["Copper", "Gold"]},
    }


def summary(lat_ms: list[float], conflicts: list[int]) -> dict[str, Any]:
    return {
        "n": len(lat_ms),
        "median_ms": round(statistics.median(lat_ms), 1),
        "p95_ms": round(percentile(lat_ms, 95), 1),
        "p99_ms": round(percentile(lat_ms, 99), 1),
        "max_ms": round(max(lat_ms), 1),
        "mean_conflicts": round(statistics.fmean(conflicts), 2),
        "max_conflicts": max(conflicts),
    }


# ------------------------------------------------------------------ measurements


def check_library(
    url: str, cands: list[Any], warmup: int
) -> tuple[dict[str, Any], list[float], list[int]]:
    """``overlaps.check`` for each candidate, one connection, one transaction per check."""
    settings, rules = Settings(), RuleBook.load()
    engine = make_engine(url, pool_size=1)
    lat: list[float] = []
    conflicts: list[int] = []
    try:
        with engine.connect() as conn:
            for i, geom in enumerate(cands[:warmup] + cands):
                t0 = time.perf_counter()
                with conn.begin():
                    report = overlaps.check(
                        conn,
                        geom,
                        rules=rules,
                        received_at=datetime.now(UTC),
                        timezone=settings.register_timezone,
                        tolerance_m2=settings.overlap_tolerance_m2,
                    )
                if i >= warmup:
                    lat.append((time.perf_counter() - t0) * 1000)
                    conflicts.append(len(report.conflicts))
    finally:
        engine.dispose()
    return summary(lat, conflicts), lat, conflicts


def check_http(base: str, cands: list[Any], warmup: int) -> tuple[dict[str, Any], list[int]]:
    """``POST /overlaps/check`` for each candidate, sequentially, one keep-alive client."""
    lat: list[float] = []
    conflicts: list[int] = []
    inadmissible = 0
    bodies = [json.dumps(feature(g)).encode() for g in cands]
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=base, timeout=120) as client:
        for i, body in enumerate(bodies[:warmup] + bodies):
            t0 = time.perf_counter()
            r = client.post("/overlaps/check", content=body, headers=headers)
            elapsed = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                raise RuntimeError(f"POST /overlaps/check -> {r.status_code}: {r.text[:500]}")
            if i >= warmup:
                answer = r.json()
                lat.append(elapsed)
                conflicts.append(len(answer["conflicts"]))
                inadmissible += not answer["admissible"]
    out = summary(lat, conflicts)
    out["inadmissible"] = inadmissible
    return out, conflicts


def explain_slowest(url: str, geom: Any) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the two statements of ``check`` for one candidate."""
    rules, settings = RuleBook.load(), Settings()
    engine = make_engine(url, pool_size=1)
    wkb = overlaps._ewkb(geom)
    try:
        with engine.connect() as conn, conn.begin():
            report = overlaps.check(
                conn,
                geom,
                rules=rules,
                received_at=datetime.now(UTC),
                timezone=settings.register_timezone,
                tolerance_m2=settings.overlap_tolerance_m2,
            )
            hits = conn.execute(
                text("EXPLAIN (ANALYZE, BUFFERS) " + overlaps._HITS_SQL.text),
                {"wkb": wkb, "exclusive": json.dumps(overlaps.exclusivity(rules)), "exclude": None},
            ).scalars()
            hits_plan = "\n".join(hits)
            avail = conn.execute(
                text("EXPLAIN (ANALYZE, BUFFERS) " + overlaps._AVAILABLE_SQL.text),
                {"wkb": wkb, "taken": [c.ewkb for c in report.conflicts]},
            ).scalars()
            avail_plan = "\n".join(avail)
    finally:
        engine.dispose()
    return {"hits": hits_plan, "available": avail_plan, "conflicts": str(len(report.conflicts))}


def time_audit(
    url: str, out: Path, province: str | None, timeout: float, log_file: Path
) -> dict[str, Any]:
    env = {**os.environ, "CADASTRE_DATABASE_URL": url}
    cmd = [str(CADASTRE), "audit", "overlaps", str(out)]
    if province:
        cmd += ["--province", province]
    started = time.perf_counter()
    with log_file.open("w") as fh:
        try:
            proc = subprocess.run(
                cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"province": province, "timed_out": True, "seconds": timeout, "rows": None}
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"audit failed (exit {proc.returncode}): {log_file.read_text()[-2000:]}")
    with out.open() as fh:
        rows = sum(1 for _ in fh) - 1
    kinds: dict[str, int] = {}
    with out.open() as fh:
        next(fh)
        for line in fh:
            k = line.split(",", 1)[0]
            kinds[k] = kinds.get(k, 0) + 1
    return {
        "province": province,
        "timed_out": False,
        "seconds": round(elapsed, 2),
        "rows": rows,
        "by_kind": kinds,
    }


# ------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="licences to generate")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--candidates", type=int, default=1000, help="candidates to check")
    parser.add_argument("--candidate-seed", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=20, help="untimed checks first")
    parser.add_argument(
        "--chunk", type=int, default=250_000, help="licences per import file (one CLI run each)"
    )
    parser.add_argument(
        "--audit-timeout", type=float, default=900.0, help="seconds before an audit is abandoned"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON-lines results file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (not the server)")
    parser.add_argument("--label", default="", help="free text stored with the result")
    args = parser.parse_args(argv)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))

    work = Path(tempfile.mkdtemp(prefix="cadastre-overlap-bench-"))
    work.chmod(0o755)
    cluster = LocalCluster(work / "pg", free_port(), listen="127.0.0.1", durable=True)
    result: dict[str, Any] = {
        "bench": "overlaps",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": args.count,
        "seed": args.seed,
        "candidates": args.candidates,
        "candidate_seed": args.candidate_seed,
        "label": args.label,
        "machine": machine(),
    }
    try:
        log(f"work dir {work}; PostgreSQL from {find_pg_bin()}")
        t0 = time.perf_counter()
        frame = make_licences(args.count, args.seed)
        granted_share = float((frame["status"] == "granted").mean())
        centres = shapely.get_coordinates(shapely.centroid(frame.geometry.to_numpy()))
        files = []
        for i, start in enumerate(range(0, args.count, args.chunk)):
            path = work / f"licences_{args.count}_{i}.geojson"
            write_file(frame.iloc[start : start + args.chunk], path)
            files.append(path)
        del frame
        result["dataset"] = {
            "prepare_s": round(time.perf_counter() - t0, 2),
            "files": len(files),
            "granted_share": round(granted_share, 4),
        }
        log(f"{args.count} licences in {len(files)} file(s), {time.perf_counter() - t0:.1f} s")
        cands = make_candidates(
            np.random.default_rng(args.candidate_seed), centres, args.candidates
        )
        result["candidate_km2_median"] = round(
            statistics.median(overlaps_area_km2(g) for g in cands[: min(200, len(cands))]),
            2,
        )

        cluster.start()
        log(f"PostGIS on 127.0.0.1:{cluster.port} ({cluster.root})")
        url = prepare_database(cluster, "bench")
        imports = []
        for i, path in enumerate(files):
            elapsed = time_import(path, url, work / f"import_{i}.log")
            imports.append(round(elapsed, 2))
            log(f"  import {i + 1}/{len(files)}: {elapsed:.1f} s")
            path.unlink()
        n = count_licences(url)
        if n != args.count:
            raise RuntimeError(f"import wrote {n} licences, expected {args.count}")
        result["import_s"] = {"chunks": imports, "total": round(sum(imports), 2)}
        engine = make_engine(url, pool_size=1)
        with engine.begin() as conn:
            features = json.loads(RESERVED_FILE.read_text())["features"]
            result["reserved_areas"] = load_reserved_areas(conn, features)
            by_status = dict(
                conn.execute(text("SELECT status, count(*) FROM licences GROUP BY 1")).all()
            )
        engine.dispose()
        result["by_status"] = by_status
        t0 = time.perf_counter()
        vacuum_analyze(url)
        result["vacuum_analyze_s"] = round(time.perf_counter() - t0, 2)
        result["versions"] = server_versions(url)
        log(f"loaded; {by_status}; VACUUM ANALYZE {result['vacuum_analyze_s']} s")

        lib, lib_lat, _ = check_library(url, cands, args.warmup)
        result["check_library"] = lib
        log(f"  library check: {lib}")
        slowest = int(np.argmax(lib_lat))
        result["explain_slowest"] = explain_slowest(url, cands[slowest])
        result["explain_slowest"]["library_ms"] = f"{lib_lat[slowest]:.1f}"

        with serving(url, free_port(), work / "serve.log") as base:
            log(f"cadastre serve on {base}")
            http, _ = check_http(base, cands, args.warmup)
        result["check_http"] = http
        log(f"  HTTP check: {http}")

        audits = []
        for province in (AUDIT_PROVINCE, None):
            a = time_audit(
                url,
                work / f"audit_{province or 'all'}.csv",
                province,
                args.audit_timeout,
                work / f"audit_{province or 'all'}.log",
            )
            audits.append(a)
            log(f"  audit {province or 'whole country'}: {a}")
        result["audit"] = audits
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    prov = audits[0]
    result["budget"] = {
        "check_p95_ms": BUDGET_CHECK_P95_MS,
        "check_applies": args.count >= BUDGET_CHECK_AT,
        "check_ok_library": result["check_library"]["p95_ms"] <= BUDGET_CHECK_P95_MS,
        "check_ok_http": result["check_http"]["p95_ms"] <= BUDGET_CHECK_P95_MS,
        "province_audit_s": BUDGET_PROVINCE_AUDIT_S,
        "audit_applies": args.count <= BUDGET_AUDIT_AT,
        "audit_ok": (not prov["timed_out"]) and prov["seconds"] <= BUDGET_PROVINCE_AUDIT_S,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        fh.write(json.dumps(result, sort_keys=True) + "\n")
    print(report(result))
    return 0


def overlaps_area_km2(geom: Any) -> float:
    """Approximate area (km², local equirectangular) of a candidate, for the report."""
    lat = shapely.centroid(geom).y
    return geom.area * KM_PER_DEG_LAT * 111.32 * math.cos(math.radians(lat))


def report(r: dict[str, Any]) -> str:
    b = r["budget"]
    ok = {True: "ok", False: "**over budget**"}

    def verdict(applies: bool, good: bool) -> str:
        return ok[good] if applies else f"({ok[good]} if it applied)"

    rows = [
        f"Overlap benchmark: {r['count']:,} licences ({r['by_status']}), "
        f"{r['reserved_areas']} reserved areas, {r['machine']['cpus']} CPUs, "
        f"PostgreSQL {r['versions']['postgresql']} / PostGIS {r['versions']['postgis']}",
        "",
        "| measurement | median | p95 | p99 | mean conflicts | budget | |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for key, label, good in (
        ("check_library", "`overlaps.check`, one connection (ms)", b["check_ok_library"]),
        ("check_http", "`POST /overlaps/check`, sequential (ms)", b["check_ok_http"]),
    ):
        c = r[key]
        rows.append(
            f"| {label}, {c['n']} candidates | {c['median_ms']:.1f} | {c['p95_ms']:.1f} | "
            f"{c['p99_ms']:.1f} | {c['mean_conflicts']:.1f} | p95 ≤ {b['check_p95_ms']:.0f} "
            f"at 1M | {verdict(b['check_applies'], good)} |"
        )
    for a in r["audit"]:
        where = a["province"] or "whole country"
        secs = "timed out" if a["timed_out"] else f"{a['seconds']:.1f}"
        budget = f"{b['province_audit_s']:.0f} s at 100k" if a["province"] else ""
        mark = verdict(b["audit_applies"], b["audit_ok"]) if a["province"] else ""
        rows.append(
            f"| `cadastre audit overlaps` {where} (s), {a['rows']} rows | {secs} | | | | "
            f"{budget} | {mark} |"
        )
    rows.append(
        f"| import (s), {len(r['import_s']['chunks'])} CLI run(s) | "
        f"{r['import_s']['total']:.1f} | | | | | |"
    )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
