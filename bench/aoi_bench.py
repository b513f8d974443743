"""Benchmark of the area-of-interest report over whole districts, on the sample data.

Run from the repository root::

    .venv/bin/python bench/aoi_bench.py

What it does, all on this machine and all thrown away at the end:

1. starts its own PostGIS (:class:`cadastre.db.cluster.LocalCluster` in a temporary
   directory, on a free 127.0.0.1 port), migrates a database and loads the sample data
   with ``cadastre load-sample`` (licences, reserved areas, the survey layers: occurrences,
   faults, the synthetic geology and the synthetic aeromagnetic grid);
2. starts ``cadastre serve`` on a free port;
3. for each district of ``--districts`` (geoBoundaries ADM2 polygons from
   ``sample_data/``, sent as they are, a few hundred vertices each), posts the polygon to
   ``POST /aoi/report`` ``--repeat`` times after one warm-up, timing each answer (request
   sent to whole body received);
4. prints a markdown table (median and max latency, what the report found) and appends one
   JSON line to ``bench/results/aoi.jsonl``.

Budget (from the issue): a whole district (thousands of km²) in under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from register_bench import CADASTRE, free_port, log, machine, process, server_versions  # noqa: E402

from cadastre.db.cluster import LocalCluster, find_pg_bin  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "aoi.jsonl"
DISTRICTS = ROOT / "sample_data" / "pakistan_admin2_districts.geojson"
DEFAULT_DISTRICTS = "Chagai,Kharan,Khuzdar,Quetta,Gilgit,Lahore"
BUDGET_S = 2.0


def run(cmd: list[str], env: dict[str, str], log_file: Path) -> float:
    started = time.perf_counter()
    with log_file.open("a") as fh:
        proc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log_file.read_text()[-3000:]}")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--districts", default=DEFAULT_DISTRICTS, help="comma-separated names")
    parser.add_argument("--repeat", type=int, default=5, help="timed reports per district")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))

    frame = gpd.read_file(DISTRICTS)
    wanted = [d.strip() for d in args.districts.split(",") if d.strip()]
    unknown = sorted(set(wanted) - set(frame["district"]))
    if unknown:
        parser.error(f"unknown district(s): {', '.join(unknown)}")

    work = Path(tempfile.mkdtemp(prefix="cadastre-aoibench-"))
    work.chmod(0o755)
    cluster = LocalCluster(work / "pg", free_port(), listen="127.0.0.1")
    result: dict[str, Any] = {
        "bench": "aoi",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": args.label,
        "repeat": args.repeat,
        "command": " ".join([".venv/bin/python", "bench/aoi_bench.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
    }
    rows: list[dict[str, Any]] = []
    try:
        log(f"work dir {work}; PostgreSQL from {find_pg_bin()}")
        cluster.start()
        cluster.create_database("aoi")
        url = cluster.url("aoi")
        env = {
            **os.environ,
            "CADASTRE_DATABASE_URL": url,
            "CADASTRE_DATA_DIR": str(work / "data"),
        }
        setup_log = work / "setup.log"
        run([str(CADASTRE), "db", "upgrade"], env, setup_log)
        result["load_sample_s"] = round(run([str(CADASTRE), "load-sample"], env, setup_log), 1)
        log(f"sample data loaded in {result['load_sample_s']} s")
        result["versions"] = server_versions(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [str(CADASTRE), "serve", "--host", "127.0.0.1", "--port", str(port)]
        with (
            process(cmd, env, f"{base}/health", work / "serve.log"),
            httpx.Client(base_url=base, timeout=120) as http,
        ):
            for name in wanted:
                geometry = json.loads(
                    gpd.GeoSeries([frame.loc[frame["district"] == name].geometry.iloc[0]]).to_json()
                )["features"][0]["geometry"]
                http.post("/aoi/report", json=geometry).raise_for_status()  # warm-up
                times: list[float] = []
                body: dict[str, Any] = {}
                size = 0
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    r = http.post("/aoi/report", json=geometry)
                    times.append(time.perf_counter() - t0)
                    r.raise_for_status()
                    size = len(r.content)
                    body = r.json()
                row = {
                    "district": name,
                    "area_km2": round(body["area_km2"], 1),
                    "median_s": round(statistics.median(times), 3),
                    "max_s": round(max(times), 3),
                    "licences": len(body["licences"]),
                    "free_pct": round(body["free_ground"]["share_pct"], 1),
                    "vector_features": sum(v["features"] for v in body["survey"]["vector"]),
                    "rasters": len(body["survey"]["raster"]),
                    "bytes": size,
                }
                rows.append(row)
                log(json.dumps(row))
    finally:
        cluster.stop()
    result["rows"] = rows
    result["within_budget"] = all(r["median_s"] < BUDGET_S for r in rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        fh.write(json.dumps(result) + "\n")
    print()
    print(
        "| district | km² | median s | max s | licences | free % | survey features | rasters "
        "| answer KB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['district']} | {r['area_km2']:,.0f} | {r['median_s']:.3f} | {r['max_s']:.3f} "
            f"| {r['licences']} | {r['free_pct']} | {r['vector_features']} | {r['rasters']} "
            f"| {r['bytes'] / 1024:,.0f} |"
        )
    print(f"\nall medians under {BUDGET_S} s: {result['within_budget']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
