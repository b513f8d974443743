"""Expiry benchmark: one run of the obligations job over 30,000 titles past expiry.

The issue's budget: 30,000 expiries in one run of ``cadastre obligations run`` finish in
under a minute. Measured as the wall clock of that command (a subprocess, process start
to exit: one transaction that expires every title past its expiry date with one event
each, then issues notices for overdue obligations of the titles left granted).

    .venv/bin/python bench/expiry_bench.py                       # 30,000 + 10,000, 3 runs
    .venv/bin/python bench/expiry_bench.py --expiring 3000 --live 1000 --runs 1

Not part of the test suite. See bench/README.md.
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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from register_bench import (
    CADASTRE,
    ROOT,
    LocalCluster,
    drop_database,
    free_port,
    log,
    machine,
    make_licences,
    prepare_database,
    server_versions,
    vacuum_analyze,
    write_file,
)

RESULTS = ROOT / "bench" / "results" / "expiry.jsonl"
BUDGET_S = 60.0


def make_titles(expiring: int, live: int, seed: int) -> Any:
    """``expiring`` titles whose term ended 1-365 days ago and ``live`` titles granted 13-36
    months ago still in their term (so rent and, for exploration licences, the start of
    work are overdue: the job notices them)."""
    frame = make_licences(expiring + live, seed)
    rng = np.random.default_rng(seed + 1)
    today = date.today()
    ended = [today - timedelta(days=int(d)) for d in rng.integers(2, 366, expiring)]
    granted = [e - timedelta(days=3 * 365) for e in ended]
    live_granted = [today - timedelta(days=int(d)) for d in rng.integers(400, 1100, live)]
    granted += live_granted
    expires = ended + [g + timedelta(days=5 * 365) for g in live_granted]
    frame["status"] = "granted"
    frame["granted_on"] = [g.isoformat() for g in granted]
    frame["expires_on"] = [e.isoformat() for e in expires]
    frame["applied_on"] = [(g - timedelta(days=60)).isoformat() for g in granted]
    return frame


def run_job(url: str, log_file: Path) -> tuple[float, str]:
    env = {**os.environ, "CADASTRE_DATABASE_URL": url}
    started = time.perf_counter()
    proc = subprocess.run(
        [str(CADASTRE), "obligations", "run"], env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    log_file.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"job failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout.strip()


def counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT 'status:' || status, count(*) FROM licences GROUP BY 1 UNION ALL "
                "SELECT 'event:' || action, count(*) FROM licence_events GROUP BY 1"
            )
        ).all()
    engine.dispose()
    return {str(k): int(n) for k, n in rows}


def clone(cluster: LocalCluster, template: str, name: str) -> str:
    engine = create_engine(cluster.url("postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    engine.dispose()
    return cluster.url(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expiring", type=int, default=30_000, help="titles past expiry")
    parser.add_argument("--live", type=int, default=10_000, help="titles in term, rent overdue")
    parser.add_argument("--runs", type=int, default=3, help="job runs, each on a fresh copy")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON-lines results file")
    parser.add_argument("--label", default="", help="free text stored with the result")
    args = parser.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))

    work = Path(tempfile.mkdtemp(prefix="cadastre-expiry-bench-"))
    work.chmod(0o755)
    cluster = LocalCluster(work / "pg", free_port(), listen="127.0.0.1", durable=True)
    result: dict[str, Any] = {
        "bench": "expiry",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "expiring": args.expiring,
        "live": args.live,
        "seed": args.seed,
        "label": args.label,
        "machine": machine(),
    }
    try:
        cluster.start()
        base = prepare_database(cluster, "expiry_base")
        result["server"] = server_versions(base)
        data = work / "titles.geojson"
        write_file(make_titles(args.expiring, args.live, args.seed), data)
        log(f"importing {args.expiring + args.live} titles (not timed)")
        env = {**os.environ, "CADASTRE_DATABASE_URL": base}
        subprocess.run([str(CADASTRE), "import", "licences", str(data)], env=env, check=True)
        vacuum_analyze(base)
        runs, again = [], []
        for i in range(args.runs):
            url = clone(cluster, "expiry_base", f"run_{i}")
            vacuum_analyze(url)
            elapsed, said = run_job(url, work / f"run_{i}.log")
            log(f"run {i + 1}: {elapsed:.1f} s: {said}")
            after = counts(url)
            if after.get("status:expired") != args.expiring:
                raise RuntimeError(f"expected {args.expiring} expired, found {after}")
            if after.get("event:expire") != args.expiring:
                raise RuntimeError(f"expected {args.expiring} expire events, found {after}")
            second, said2 = run_job(url, work / f"run_{i}_again.log")
            if counts(url) != after:
                raise RuntimeError("the second run changed the register")
            log(f"run {i + 1} again: {second:.1f} s: {said2}")
            runs.append(elapsed)
            again.append(second)
            result["counts"] = after
            drop_database(cluster, f"run_{i}")
        result |= {
            "runs_s": [round(r, 2) for r in runs],
            "median_s": round(statistics.median(runs), 2),
            "second_run_s": [round(r, 2) for r in again],
            "budget_s": BUDGET_S,
            "within_budget": statistics.median(runs) < BUDGET_S,
        }
        print(json.dumps(result, indent=2))
        with args.out.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
    finally:
        cluster.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
