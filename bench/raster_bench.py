#!/usr/bin/env python3
"""Raster serving benchmark: PNG tiles and zonal statistics, this service vs TiTiler, same COG.

    .venv/bin/python bench/raster_bench.py                                  # 10,000 x 10,000
    .venv/bin/python bench/raster_bench.py --duration 5 --runs 3 --zooms 8,10,12,14
    .venv/bin/python bench/raster_bench.py --titiler-venv /tmp/titiler-venv --keep

What it does, all on 127.0.0.1 and thrown away at the end:

1. writes a SYNTHETIC 10,000 x 10,000 float32 grid (30 m pixels, WGS 84 / UTM 42N,
   300 km square centred on Nushki district, Balochistan; smooth field from a fixed seed;
   nodata -99999 declared, no pixel is nodata) as a tiled GeoTIFF, in strips;
2. starts a throw-away PostGIS (``LocalCluster``, as the other benchmarks), migrates a
   database and times ``cadastre raster import`` (COG with overviews + statistics);
3. serves it two ways, each one uvicorn worker, access log off, started and stopped with
   ``register_bench.process`` (waits for health, always stops):

   * ``ours``     ``cadastre serve`` (``GET /rasters/bench_grid/tiles/{z}/{x}/{y}.png``);
   * ``titiler``  developmentseed TiTiler (``titiler.application``) from its own virtual
     environment (``--titiler-venv``, made with ``pip install titiler.application uvicorn``
     on first use), serving the very COG file the import made
     (``GET /cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url=...``);

   both with the same ``rescale`` (the stored 2nd-98th percentile) and ``viridis``;
4. tiles: per zoom, a deterministic list (at most ``--tiles`` tiles, evenly spread) of the
   tiles wholly inside the raster's footprint (both servers answer 200 with a full tile),
   fetched by the shared harness's closed-loop driver
   (``/work/shared/bench/load.py``'s python driver: ``--concurrency`` keep-alive
   connections for ``--duration`` seconds, list rotated), servers alternating, ``--runs``
   times; reported: the median over runs of tiles/s, p50 and p95;
5. statistics: the Nushki district polygon (geoBoundaries ADM2, ~6,500 km², about 7 million
   pixels) posted ``--stats-repeats`` times to each (``POST /rasters/bench_grid/statistics``;
   TiTiler ``POST /cog/statistics`` with ``max_size`` unset so that it reads full
   resolution), one at a time after one warm-up; the valid pixel counts and means are
   compared.

Results are appended as JSON lines to ``bench/results/raster.jsonl`` and a markdown table
is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import morecantile
import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.windows import Window
from shapely.geometry import box, shape

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import register_bench as rb  # noqa: E402  (also puts the repository root on sys.path)

from cadastre.db.cluster import LocalCluster  # noqa: E402

ROOT = HERE.parent
RESULTS = HERE / "results" / "raster.jsonl"
DEFAULT_HARNESS = ROOT.parent / "shared" / "bench"
DISTRICTS = ROOT / "sample_data" / "pakistan_admin2_districts.geojson"
SLUG = "bench_grid"
CRS = "EPSG:32642"
NODATA = -99999.0
TMS = morecantile.tms.get("WebMercatorQuad")


def log(msg: str) -> None:
    print(f"[raster_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ data
def district() -> dict[str, Any]:
    features = json.loads(DISTRICTS.read_text())["features"]
    [nushki] = [f for f in features if f["properties"]["district"] == "Nushki"]
    return dict(nushki)


def make_grid(path: Path, size: int, pixel: float, centre: tuple[float, float]) -> None:
    """A smooth SYNTHETIC field (sum of fixed-seed waves and bumps), written in strips."""
    x, y = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(*centre)
    x0, y1 = round(x - size * pixel / 2, -3), round(y + size * pixel / 2, -3)
    rng = np.random.default_rng(5)
    waves = rng.uniform(-1, 1, (12, 2)) * 2 * math.pi / (size * rng.uniform(0.02, 0.5, (12, 1)))
    phases, amps = rng.uniform(0, 2 * math.pi, 12), rng.uniform(5, 60, 12)
    bumps = rng.uniform(0, size, (40, 2))
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "float32",
        "crs": CRS,
        "transform": from_origin(x0, y1, pixel, pixel),
        "nodata": NODATA,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "predictor": 3,
        "BIGTIFF": "IF_SAFER",
    }
    cols = np.arange(size, dtype=np.float32)
    strip = 512
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, size, strip):
            rows = np.arange(r0, min(size, r0 + strip), dtype=np.float32)
            cc, rr = np.meshgrid(cols, rows)
            v = np.zeros(cc.shape, dtype=np.float32)
            for (kx, ky), ph, a in zip(waves, phases, amps, strict=True):
                v += a * np.sin(kx * cc + ky * rr + ph)
            for bx, by in bumps[:12]:
                v += 200 * np.exp(-((cc - bx) ** 2 + (rr - by) ** 2) / (2 * (size / 60) ** 2))
            v = np.round(v, 1)
            dst.write(v, 1, window=Window(0, r0, size, len(rows)))


def tiles_inside(footprint: Any, z: int, n: int) -> list[Any]:
    """Up to ``n`` tiles of zoom ``z`` wholly inside the footprint, evenly spread, fixed order."""
    inside = []
    for t in TMS.tiles(*footprint.bounds, [z]):
        b = TMS.bounds(t)
        if footprint.contains(box(b.left, b.bottom, b.right, b.top)):
            inside.append(t)
    if len(inside) > n:
        step = len(inside) / n
        inside = [inside[int(i * step)] for i in range(n)]
    return inside


# ------------------------------------------------------------------- servers
def ensure_titiler(venv: Path) -> Path:
    uvicorn = venv / "bin" / "uvicorn"
    if (
        not uvicorn.exists()
        or subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import titiler.application"], check=False
        ).returncode
    ):
        log(f"installing titiler.application into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "titiler.application", "uvicorn"],
            check=True,
        )
    return uvicorn


def titiler_version(venv: Path) -> str:
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('titiler.application'), "
            "m.version('rio-tiler'), m.version('rasterio'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip()


# --------------------------------------------------------------- measurements
def load_tiles(base: str, paths: list[str], a: argparse.Namespace) -> dict[str, Any]:
    """The shared harness's python driver: closed loop, ``a.concurrency`` connections."""
    sys.path.insert(0, str(a.harness))
    import load  # the harness's load.py

    opts = argparse.Namespace(gzip=False, timeout=60.0, max_requests=a.max_requests)
    result: dict[str, Any] = load.run_python(base, paths, a.concurrency, a.duration, opts)
    return result


def time_statistics(
    client: httpx.Client, url: str, body: dict[str, Any], repeats: int
) -> tuple[list[float], dict[str, Any]]:
    r = client.post(url, json=body)  # warm-up
    r.raise_for_status()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = client.post(url, json=body)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    answer: dict[str, Any] = r.json()
    return times, answer


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


# ------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=10_000, help="raster width = height, pixels")
    ap.add_argument("--pixel", type=float, default=30.0, help="pixel size, m")
    ap.add_argument("--zooms", default="8,10,12,14")
    ap.add_argument("--tiles", type=int, default=200, help="tiles per zoom in the list")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-requests", type=int, default=1_000_000)
    ap.add_argument("--stats-repeats", type=int, default=10)
    ap.add_argument("--titiler-venv", type=Path, default=Path("/tmp/titiler-venv"))
    ap.add_argument("--harness", type=Path, default=DEFAULT_HARNESS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--label", default="")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (data, logs)")
    a = ap.parse_args(argv)
    zooms = [int(z) for z in a.zooms.split(",")]

    uvicorn_titiler = ensure_titiler(a.titiler_venv)
    work = Path(tempfile.mkdtemp(prefix="raster-bench-"))
    work.chmod(0o755)  # the cluster may run as the postgres user (when we are root)
    cluster = LocalCluster(work / "pg", rb.free_port(), listen="127.0.0.1", durable=False)
    result: dict[str, Any] = {
        "bench": "raster",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": a.size,
        "pixel_m": a.pixel,
        "concurrency": a.concurrency,
        "duration_s": a.duration,
        "runs": a.runs,
        "label": a.label,
        "machine": rb.machine(),
        "titiler": titiler_version(a.titiler_venv),
        "loadavg_start": os.getloadavg()[0],
    }
    try:
        nushki = district()
        centre = shape(nushki["geometry"]).centroid
        src = work / "grid.tif"
        t0 = time.perf_counter()
        make_grid(src, a.size, a.pixel, (centre.x, centre.y))
        result["make_grid_s"] = round(time.perf_counter() - t0, 1)
        mib = src.stat().st_size >> 20
        log(f"grid {a.size} x {a.size} written in {result['make_grid_s']} s ({mib} MiB)")

        cluster.start()
        url = rb.prepare_database(cluster, "raster")
        rasters = work / "rasters"
        env = {**os.environ, "CADASTRE_DATABASE_URL": url, "CADASTRE_RASTER_DIR": str(rasters)}
        t0 = time.perf_counter()
        subprocess.run(
            [str(rb.CADASTRE), "raster", "import", str(src), "--slug", SLUG, "--name",
             "benchmark grid (SYNTHETIC)", "--kind", "other", "--source", "raster_bench.py",
             "--licence", "CC0-1.0", "--units", "nT", "--synthetic"],
            env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        result["import_s"] = round(time.perf_counter() - t0, 1)
        [cog] = [p for p in rasters.iterdir() if p.suffix == ".tif"]
        result["cog_mib"] = round(cog.stat().st_size / 2**20, 1)
        log(f"imported as COG in {result['import_s']} s ({result['cog_mib']} MiB)")

        port_ours, port_titiler = rb.free_port(), rb.free_port()
        ours = f"http://127.0.0.1:{port_ours}"
        titiler = f"http://127.0.0.1:{port_titiler}"
        cmd_ours = [str(rb.CADASTRE), "serve", "--host", "127.0.0.1", "--port", str(port_ours)]
        cmd_titiler = [str(uvicorn_titiler), "titiler.application.main:app", "--host",
                       "127.0.0.1", "--port", str(port_titiler), "--no-access-log"]  # fmt: skip
        with (
            rb.process(cmd_ours, env, f"{ours}/health", work / "ours.log"),
            rb.process(cmd_titiler, dict(os.environ), f"{titiler}/healthz", work / "titiler.log"),
            httpx.Client(timeout=120) as client,
        ):
            entry = client.get(f"{ours}/rasters/{SLUG}").json()
            p = entry["raster"]["statistics"][0]["percentiles"]
            rescale = f"{p['2']:.1f},{p['98']:.1f}"
            footprint = shape(entry["extent"])
            style = f"rescale={rescale}&colormap=viridis"
            tpl = {
                "ours": f"/rasters/{SLUG}/tiles/{{z}}/{{x}}/{{y}}.png?{style}",
                "titiler": f"/cog/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}.png?url={cog}"
                f"&rescale={rescale}&colormap_name=viridis",
            }
            bases = {"ours": ours, "titiler": titiler}
            records = []
            for z in zooms:
                tiles = tiles_inside(footprint, z, a.tiles)
                for name in bases:  # both answer a tile before measuring
                    t = tiles[0]
                    r = client.get(bases[name] + tpl[name].format(z=t.z, x=t.x, y=t.y))
                    if r.status_code != 200 or r.headers["content-type"] != "image/png":
                        raise RuntimeError(f"{name} z{z}: {r.status_code} {r.text[:300]}")
                for run in range(a.runs):
                    for name in bases if run % 2 == 0 else reversed(list(bases)):
                        paths = [tpl[name].format(z=t.z, x=t.x, y=t.y) for t in tiles]
                        rec = load_tiles(bases[name], paths, a)
                        rec.update(server=name, zoom=z, run=run, tiles_in_list=len(tiles))
                        rec["loadavg"] = os.getloadavg()[0]
                        records.append(rec)
                        log(f"z{z} {name} run {run}: {rec['rps']} tiles/s p50 {rec['p50_ms']} ms "
                            f"p95 {rec['p95_ms']} ms errors {rec['errors']}")  # fmt: skip
            result["tiles"] = records

            body = {"type": "Feature", "properties": {}, "geometry": nushki["geometry"]}
            stats: dict[str, Any] = {}
            t_ours, ans_ours = time_statistics(
                client, f"{ours}/rasters/{SLUG}/statistics", body["geometry"], a.stats_repeats
            )
            t_tit, ans_tit = time_statistics(
                client, f"{titiler}/cog/statistics?url={cog}", body, a.stats_repeats
            )
            band_ours = ans_ours["bands"][0]
            band_tit = ans_tit["properties"]["statistics"]["b1"]
            for name, times, count, mean in (
                ("ours", t_ours, band_ours["count"], band_ours["mean"]),
                ("titiler", t_tit, band_tit.get("valid_pixels"), band_tit.get("mean")),
            ):
                stats[name] = {
                    "median_ms": round(statistics.median(times), 1),
                    "p95_ms": round(pct(times, 95), 1),
                    "valid_pixels": count,
                    "mean": mean,
                }
            stats["window"] = ans_ours["window"]
            result["statistics"] = stats
        result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        result["loadavg_end"] = os.getloadavg()[0]
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with a.out.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
        print(report(result, zooms))
        return 0
    finally:
        cluster.destroy()
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(r: dict[str, Any], zooms: list[int]) -> str:
    lines = [
        f"raster {r['size']} x {r['size']} float32, {r['pixel_m']} m; COG {r['cog_mib']} MiB, "
        f"import {r['import_s']} s; concurrency {r['concurrency']}, {r['duration_s']} s x "
        f"{r['runs']} runs (medians); TiTiler {r['titiler']}; 1-min load average "
        f"{r['loadavg_start']:.1f} at start, {r['loadavg_end']:.1f} at end",
        "",
        "| zoom | ours tiles/s | TiTiler tiles/s | ratio | ours p50 / p95 ms | "
        "TiTiler p50 / p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    for z in zooms:
        med: dict[str, dict[str, float]] = {}
        for name in ("ours", "titiler"):
            recs = [x for x in r["tiles"] if x["server"] == name and x["zoom"] == z]
            med[name] = {
                k: statistics.median(float(x[k]) for x in recs) for k in ("rps", "p50_ms", "p95_ms")
            }
        o, t = med["ours"], med["titiler"]
        lines.append(
            f"| {z} | {o['rps']:.1f} | {t['rps']:.1f} | {o['rps'] / t['rps']:.2f} | "
            f"{o['p50_ms']:.0f} / {o['p95_ms']:.0f} | {t['p50_ms']:.0f} / {t['p95_ms']:.0f} |"
        )
    s = r["statistics"]
    lines += [
        "",
        "| statistics over Nushki district | median ms | p95 ms | valid pixels | mean |",
        "|---|---|---|---|---|",
    ]
    for name in ("ours", "titiler"):
        x = s[name]
        lines.append(
            f"| {name} | {x['median_ms']} | {x['p95_ms']} | {x['valid_pixels']} | {x['mean']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
