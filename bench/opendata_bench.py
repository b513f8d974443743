"""Benchmark of the open data exports: GET /opendata/licences.{csv,geojson,gpkg} at scale.

Run from the repository root::

    .venv/bin/python bench/opendata_bench.py --count 100000 --runs 3

1. starts its own throw-away PostGIS (durable, free 127.0.0.1 port), creates and migrates a
   database and imports N synthetic licences with ``cadastre import licences`` (the
   generator of ``register_bench.py``; not timed);
2. starts ``cadastre serve`` and downloads each format ``--runs`` times with httpx
   (request sent to the last byte received, streamed to /dev/null), checking the row count
   of the last download with pyogrio;
3. reads the server's peak resident memory (VmHWM) before and after the downloads: a
   streamed export should not grow it with N;
4. appends one JSON line to ``bench/results/opendata.jsonl`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyogrio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from register_bench import (  # noqa: E402
    count_licences,
    free_port,
    log,
    machine,
    make_licences,
    prepare_database,
    serving,
    time_import,
    vacuum_analyze,
    write_file,
)

from cadastre.db.cluster import LocalCluster  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "opendata.jsonl"
FORMATS = ("csv", "geojson", "gpkg")


def peak_rss_mb(port: int) -> float:
    """Peak resident memory of the process listening on ``port`` (Linux /proc)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[1].endswith(f":{port:04X}") and parts[3] == "0A":
            inode = parts[9]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
            if any(str(fd.readlink()) == f"socket:[{inode}]" for fd in fds):
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            continue
    return float("nan")


def download(base: str, fmt: str, target: Path) -> tuple[float, int]:
    started = time.perf_counter()
    size = 0
    with (
        httpx.stream("GET", f"{base}/opendata/licences.{fmt}", timeout=600) as r,
        target.open("wb") as fh,
    ):
        r.raise_for_status()
        for block in r.iter_bytes(1 << 16):
            fh.write(block)
            size += len(block)
    return time.perf_counter() - started, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--runs", type=int, default=3, help="downloads per format")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))

    work = Path(tempfile.mkdtemp(prefix="cadastre-bench-"))
    work.chmod(0o755)
    cluster = LocalCluster(work / "pg", free_port(), listen="127.0.0.1", durable=True)
    result: dict[str, Any] = {
        "bench": "opendata",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": args.count,
        "runs": args.runs,
        "label": args.label,
        "machine": machine(),
    }
    try:
        data = work / "licences.geojson"
        write_file(make_licences(args.count, args.seed), data)
        cluster.start()
        url = prepare_database(cluster, "bench_opendata")
        time_import(data, url, work / "import.log")
        assert count_licences(url) == args.count
        vacuum_analyze(url)
        port = free_port()
        with serving(url, port, work / "serve.log") as base:
            result["rss_mb_before"] = round(peak_rss_mb(port), 1)
            for fmt in FORMATS:
                times, size = [], 0
                target = work / f"out.{fmt}"
                for run in range(args.runs):
                    s, size = download(base, fmt, target)
                    times.append(s)
                    log(f"{fmt} run {run + 1}: {s:.2f} s, {size / 1e6:.1f} MB")
                rows = pyogrio.read_info(target)["features"]
                if fmt != "csv":
                    assert rows == args.count, (fmt, rows)
                result[fmt] = {
                    "median_s": round(statistics.median(times), 2),
                    "runs_s": [round(t, 2) for t in times],
                    "mb": round(size / 1e6, 1),
                    "rows_per_s": round(args.count / statistics.median(times)),
                }
                result[f"rss_mb_after_{fmt}"] = round(peak_rss_mb(port), 1)
    finally:
        cluster.destroy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        fh.write(json.dumps(result) + "\n")
    print(f"\n{args.count} licences, median of {args.runs} downloads\n")
    print("| format | median s | size MB | rows/s | server peak RSS after (MB) |")
    print("|---|---|---|---|---|")
    for fmt in FORMATS:
        r = result[fmt]
        rss = result[f"rss_mb_after_{fmt}"]
        print(f"| {fmt} | {r['median_s']} | {r['mb']} | {r['rows_per_s']} | {rss} |")
    print(f"\nserver peak RSS before the downloads: {result['rss_mb_before']} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
