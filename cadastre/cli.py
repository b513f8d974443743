"""The ``cadastre`` command: database, sample data, imports, exports, the service."""

from __future__ import annotations

import csv
import json
import secrets
import sys
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import func, select
from tqdm import tqdm

from cadastre import auth, logs
from cadastre.db import accounts
from cadastre.db.engine import Database, database_url, local_cluster, make_engine
from cadastre.db.generation import lock_for_write
from cadastre.db.jurisdictions import load_jurisdictions
from cadastre.db.licences import BulkSelection, bulk_transition, ids_of_numbers, select_licences
from cadastre.db.migrate import upgrade
from cadastre.db.overlaps import AuditRow, audit
from cadastre.db.reserved import load_reserved_areas
from cadastre.db.tables import licences, survey_layers
from cadastre.domain.provinces import province_code
from cadastre.errors import CadastreError, ImportRejected
from cadastre.ingest import import_licences, read_licence_file
from cadastre.rules import RuleBook
from cadastre.settings import Settings
from cadastre.survey import raster as rasters
from cadastre.survey.vector import (
    LayerMeta,
    ReadOptions,
    delete_layer,
    list_layers,
    load_vector,
    read_vector,
    set_public,
)

app = typer.Typer(help="Pakistan mining cadastre: the licence register on PostGIS.")
db_app = typer.Typer(help="The database: the project's own local PostGIS cluster, migrations.")
import_app = typer.Typer(help="Import data from files.")
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
survey_app = typer.Typer(help="Survey layers: geology, occurrences, geochemistry, drill holes...")
app.add_typer(survey_app, name="survey")

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"
#: Whoever runs the command line reaches the database directly: it reads every layer.
OPERATOR = auth.Principal(role="admin", username="cli")


def _settings() -> Settings:
    return Settings()


def _database(settings: Settings) -> Database:
    return Database(make_engine(database_url(settings), pool_size=2, role=settings.db_role))


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


# ------------------------------------------------------------------------- db


@db_app.command("start")
def db_start() -> None:
    """Start the local PostGIS cluster (creating it on first use)."""
    settings = _settings()
    if settings.database_url:
        _fail("CADASTRE_DATABASE_URL is set: that database is not managed by this command")
    cluster = local_cluster(settings)
    try:
        cluster.start()
    except CadastreError as exc:
        _fail(exc.message)
    typer.echo(f"local PostGIS running: {cluster.url()}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the local PostGIS cluster."""
    cluster = local_cluster(_settings())
    cluster.stop()
    typer.echo("local PostGIS stopped")


@db_app.command("status")
def db_status() -> None:
    """Show where the database is and whether it runs."""
    settings = _settings()
    if settings.database_url:
        typer.echo(json.dumps({"database_url": settings.database_url, "managed": False}))
        return
    status = local_cluster(settings).status()
    typer.echo(json.dumps(status, indent=2))
    if not status["running"]:
        raise typer.Exit(3)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the Alembic migrations (to ``head`` by default)."""
    upgrade(database_url(_settings()), revision)
    typer.echo(f"database at revision {revision}")


# ----------------------------------------------------------------- sample data


@app.command("load-sample")
def load_sample(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when licences are already loaded.")
    ] = False,
    directory: Annotated[Path, typer.Option("--dir", help="Sample data folder.")] = SAMPLE_DIR,
) -> None:
    """Load the provinces, the synthetic sample licences, the survey layers (districts among
    them) and the synthetic aeromagnetic grid."""
    settings = _settings()
    db = _database(settings)
    _load_sample_raster(db, settings, directory)
    with db.begin() as conn:
        loaded = bool(if_empty and conn.scalar(select(func.count()).select_from(licences)))
        present = set(conn.scalars(select(survey_layers.c.slug)))
    # Over a loaded register, only survey layers added to the samples since then come in.
    layers = [(m, f) for m, f in SAMPLE_SURVEY if not loaded or m.slug not in present]
    if loaded and not layers:
        typer.echo("sample data already loaded")
        return
    if not loaded:
        with db.begin() as conn:
            provinces = json.loads((directory / "pakistan_admin1_provinces.geojson").read_text())
            n = load_jurisdictions(
                conn,
                provinces["features"],
                source="geoBoundaries PAK ADM1 (see sample_data/README.md)",
            )
            typer.echo(f"loaded {n} provinces and territories")
            reserved = json.loads((directory / "reserved_areas_synthetic.geojson").read_text())
            m = load_reserved_areas(conn, reserved["features"])
            typer.echo(f"loaded {m} reserved areas (synthetic)")
        _import(directory / "licences_synthetic.geojson", None, actor="sample-loader", skip=False)
    for meta, file in layers:
        _survey_import(directory / file, meta, ReadOptions(), actor="sample-loader", replace=True)


#: The sample survey layers (see sample_data/README.md for sources and licences).
SAMPLE_SURVEY = (
    (
        LayerMeta(
            slug="mineral_occurrences_usgs",
            name="Mineral occurrences (USGS)",
            kind="occurrences",
            source="U.S. Geological Survey, Mineral Resources Online Spatial Data, via DARPA "
            "CriticalMAAS ta2-minmod-data",
            licence="public domain (USGS); MIT for the MinMod conversion",
            description="Mineral deposits and occurrences in Pakistan and a 50 km buffer, "
            "from USGS global compilations.",
            public=True,
        ),
        "pakistan_mineral_occurrences_usgs.geojson",
    ),
    (
        LayerMeta(
            slug="active_faults_gem2017",
            name="Active faults (GEM 2017)",
            kind="geology",
            source="GEM Global Active Faults Database, 2017 release (Styron and Pagani 2020)",
            licence="CC BY 4.0",
            description="Active faults and fold axes touching Pakistan's 50 km buffer.",
            public=True,
        ),
        "active_faults_gem2017.geojson",
    ),
    (
        LayerMeta(
            slug="geology_synthetic",
            name="SYNTHETIC geology units (Chagai)",
            kind="geology",
            source="SYNTHETIC: invented by sample_data/make_geology_synthetic.py",
            licence="Apache-2.0 (this repository)",
            description="SYNTHETIC geology polygons tiling part of Chagai, Balochistan, for "
            "demonstration only: not a geological map, no real unit is shown.",
            synthetic=True,
            public=True,  # invented demo data: public, so the public map shows it
        ),
        "geology_synthetic.geojson",
    ),
    (
        LayerMeta(
            slug="districts_geoboundaries",
            name="Districts (geoBoundaries)",
            kind="other",
            source="geoBoundaries PAK ADM2, 2019 district set (see sample_data/README.md)",
            licence="public domain per geoBoundaries metadata; attribute geoBoundaries",
            description="Pakistan's districts as sample boundaries: not an official boundary "
            "of any district or claim.",
            public=True,
        ),
        "pakistan_admin2_districts.geojson",
    ),
)


# ---------------------------------------------------------------------- survey


def _survey_import(
    path: Path, meta: LayerMeta, options: ReadOptions, *, actor: str, replace: bool
) -> None:
    try:
        meta.check()
        data = read_vector(path, options)
    except CadastreError as exc:
        _fail(exc.message)
    settings = _settings()
    db = _database(settings)
    bar = tqdm(total=len(data), unit="feature", desc=f"loading {meta.slug}", file=sys.stderr)
    try:
        with db.begin() as conn:
            entry = load_vector(
                conn,
                data,
                meta,
                actor=actor,
                replace=replace,
                progress=bar.update,
                max_features=settings.max_import_features,
            )
    except CadastreError as exc:
        bar.close()
        _fail(exc.message)
    bar.close()
    for note in entry["notes"]:
        typer.echo(f"note: {note}")
    typer.echo(
        f"loaded survey layer {entry['slug']}: {entry['feature_count']} "
        f"{entry['geometry_type']} features from {entry['original_crs']}"
    )


@survey_app.command("import")
def survey_import(
    path: Annotated[Path, typer.Argument(help="GeoPackage, zipped Shapefile, GeoJSON, KML, CSV")],
    slug: Annotated[str, typer.Option(help="Collection id: [a-z][a-z0-9_]*")],
    name: Annotated[str, typer.Option(help="Title shown to users")],
    kind: Annotated[str, typer.Option(help="geology, occurrences, geochemistry, ...")],
    source: Annotated[str, typer.Option(help="Who made the data, where it came from")],
    licence: Annotated[str, typer.Option(help="The data licence, e.g. CC BY 4.0")],
    description: Annotated[str | None, typer.Option(help="A sentence about the layer")] = None,
    synthetic: Annotated[bool, typer.Option("--synthetic", help="Invented data")] = False,
    public: Annotated[
        bool, typer.Option("--public", help="Readable without signing in (open data)")
    ] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Replace an existing slug")] = False,
    layer: Annotated[str | None, typer.Option(help="Layer of a multi-layer file")] = None,
    lon_col: Annotated[str | None, typer.Option(help="CSV longitude (x) column")] = None,
    lat_col: Annotated[str | None, typer.Option(help="CSV latitude (y) column")] = None,
    wkt_col: Annotated[str | None, typer.Option(help="CSV WKT column")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of the coordinates (EPSG:32642)")] = None,
    actor: Annotated[str, typer.Option(help="Who loads it, for the catalogue")] = "cli-import",
) -> None:
    """Import a vector survey layer; all or nothing."""
    meta = LayerMeta(
        slug=slug,
        name=name,
        kind=kind,
        source=source,
        licence=licence,
        description=description,
        synthetic=synthetic,
        public=public,
    )
    settings = _settings()
    options = ReadOptions(
        layer=layer,
        lon_col=lon_col,
        lat_col=lat_col,
        wkt_col=wkt_col,
        crs=crs,
        max_zip_entries=settings.max_zip_entries,
        max_zip_bytes=settings.max_zip_uncompressed_mb * 1024 * 1024,
    )
    _survey_import(path, meta, options, actor=actor, replace=replace)


@survey_app.command("list")
def survey_list() -> None:
    """List the survey layer catalogue."""
    db = _database(_settings())
    with db.begin() as conn:
        layers = list_layers(conn, OPERATOR)
    for entry in layers:
        flag = " SYNTHETIC" if entry["synthetic"] else ""
        typer.echo(
            f"{entry['slug']}\t{entry['kind']}\t{entry['storage']}\t"
            f"{'public' if entry['public'] else 'restricted'}\t"
            f"{entry['feature_count']}\t{entry['name']}{flag}"
        )
    if not layers:
        typer.echo("no survey layers")


@survey_app.command("visibility")
def survey_visibility(
    slug: Annotated[str, typer.Argument(help="The layer's slug (vector or raster)")],
    public: Annotated[
        bool,
        typer.Option(
            "--public/--restricted",
            help="Public: anyone reads it; restricted: signed-in callers only",
        ),
    ],
) -> None:
    """Make a survey layer (vector or raster) public or restricted."""
    db = _database(_settings())
    try:
        with db.begin() as conn:
            set_public(conn, slug, public, OPERATOR)
    except CadastreError as exc:
        _fail(exc.message)
    typer.echo(f"survey layer {slug} is now {'public' if public else 'restricted'}")


@survey_app.command("delete")
def survey_delete(slug: Annotated[str, typer.Argument(help="The layer's slug")]) -> None:
    """Delete a vector survey layer and its features."""
    db = _database(_settings())
    try:
        with db.begin() as conn:
            delete_layer(conn, slug)
    except CadastreError as exc:
        _fail(exc.message)
    typer.echo(f"deleted survey layer {slug}")


SAMPLE_RASTER = rasters.RasterMeta(
    slug="aeromag_chagai_synthetic",
    name="Chagai total-field magnetic anomaly (SYNTHETIC)",
    kind="geophysics",
    source="SYNTHETIC: made by sample_data/make_aeromag_synthetic.py (fixed seed); not a survey",
    licence="CC0-1.0",
    units="nT",
    description="Invented aeromagnetic-style grid with induced dipoles under real porphyry "
    "prospects (Saindak, Reko Diq, Koh-i-Dalil, Ziarat Pir Sultan, Dasht-e-Kain); for "
    "demonstrations and tests only.",
    synthetic=True,
    public=True,  # invented demo data: public, so the public map shows it
)


def _load_sample_raster(db: Database, settings: Settings, directory: Path) -> None:
    """The synthetic aeromagnetic grid, unless it is already catalogued."""
    with db.begin() as conn:
        known = {r["slug"] for r in rasters.list_rasters(conn, OPERATOR)}
    if SAMPLE_RASTER.slug in known:
        return
    rasters.import_raster(
        db,
        settings.rasters,
        directory / "aeromag_chagai_synthetic.tif",
        SAMPLE_RASTER,
        actor="sample-loader",
    )
    typer.echo(f"loaded raster {SAMPLE_RASTER.slug} (synthetic)")


# ---------------------------------------------------------------------- import


SHOWN_REJECTIONS = 20


def _report_rejections(rejections: list[dict[str, Any]], report_file: Path | None) -> None:
    """Print the first rejections; write every one to ``report_file`` (JSON lines)."""
    for r in rejections[:SHOWN_REJECTIONS]:
        field = f" [{r['field']}]" if r.get("field") else ""
        typer.echo(f"row {r['row']}{field}: {r['detail']}", err=True)
    if len(rejections) > SHOWN_REJECTIONS:
        hint = f"all in {report_file}" if report_file else "use --report FILE for all of them"
        typer.echo(f"... and {len(rejections) - SHOWN_REJECTIONS} more ({hint})", err=True)
    if report_file is not None:
        with report_file.open("w") as fh:
            for r in rejections:
                fh.write(json.dumps(r, default=str) + "\n")


def _import(
    path: Path,
    crs: str | None,
    *,
    actor: str,
    skip: bool,
    repair: bool = False,
    report_file: Path | None = None,
) -> None:
    settings = _settings()
    rules = RuleBook.load()
    started = time.perf_counter()
    try:
        frame, file_crs = read_licence_file(path, crs)
    except CadastreError as exc:
        _fail(exc.message)
    db = _database(settings)
    bar = tqdm(total=len(frame), unit="licence", desc=f"importing {path.name}", file=sys.stderr)
    try:
        with db.begin() as conn:
            report = import_licences(
                conn,
                frame,
                file_crs,
                rules=rules,
                actor=actor,
                skip_invalid=skip,
                repair=repair,
                tolerance_m2=settings.boundary_tolerance_m2,
                timezone=settings.register_timezone,
                progress=bar.update,
                limits=settings.shape_limits,
            )
    except ImportRejected as exc:
        bar.close()
        _report_rejections(exc.rejections, report_file)
        _fail(
            f"{len(exc.rejections)} of {len(frame)} rows rejected; nothing was imported "
            "(use --skip-invalid to import the others)"
        )
    except CadastreError as exc:
        bar.close()
        _fail(exc.message)
    bar.close()
    _report_rejections(report.rejected, report_file)
    typer.echo(
        f"imported {report.imported} of {report.read} licences, skipped {len(report.rejected)}, "
        f"in {time.perf_counter() - started:.1f} s"
    )


@import_app.command("licences")
def import_licences_cmd(
    file: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage, zipped Shapefile or CSV")],
    crs: Annotated[
        str | None, typer.Option(help="CRS of the coordinates, overriding the file's")
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the good rows, report the others")
    ] = False,
    repair: Annotated[bool, typer.Option(help="Repair invalid shapes (ST_MakeValid)")] = False,
    actor: Annotated[str, typer.Option(help="Who imports, for the event log")] = "cli-import",
    report: Annotated[
        Path | None, typer.Option(help="Write every rejected row with its reason (JSON lines)")
    ] = None,
) -> None:
    """Import licences from a file; all or nothing unless --skip-invalid."""
    _import(file, crs, actor=actor, skip=skip_invalid, repair=repair, report_file=report)


# ------------------------------------------------------------------ transition


def _read_selection_file(path: Path) -> tuple[list[int], list[str]]:
    """Licence ids or numbers from a CSV with an ``id`` or ``licence_no`` column, or a
    plain list of ids, one a line."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
    header = [h.strip().lower() for h in next(csv.reader(lines[:1]), [])]
    column = next((c for c in ("id", "licence_id", "licence_no") if c in header), None)
    if column is None:
        values = [ln.strip() for ln in lines if ln.strip()]
        if not all(v.isdigit() for v in values):
            _fail(f"{path}: expected a CSV with an id or licence_no column, or one id a line")
        return [int(v) for v in values], []
    rows = [r[header.index(column)].strip() for r in csv.reader(lines[1:]) if r]
    if column == "licence_no":
        return [], rows
    bad = next((v for v in rows if not v.isdigit()), None)
    if bad is not None:
        _fail(f"{path}: {bad!r} is not a licence id")
    return [int(v) for v in rows], []


@app.command("transition")
def transition_cmd(
    action: Annotated[str, typer.Argument(help="surrender, cancel, expire or refuse")],
    account: Annotated[
        str,
        typer.Option(
            "--as",
            help="The admin or officer account acting (its name goes to the event log; an "
            "officer acts on licences of its province only)",
        ),
    ],
    file: Annotated[
        Path | None,
        typer.Option("--file", help="CSV with an id or licence_no column, or one id a line"),
    ] = None,
    province: Annotated[str | None, typer.Option(help="Licences of this province")] = None,
    status: Annotated[str | None, typer.Option(help="Licences with this status")] = None,
    licence_type: Annotated[str | None, typer.Option(help="Licences of this type")] = None,
    expired_before: Annotated[
        str | None, typer.Option(help="Titles whose expires_on is before this date (ISO)")
    ] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with every event")] = None,
) -> None:
    """Apply one lifecycle action to many licences in one transaction; all or nothing."""
    settings = _settings()
    started = time.perf_counter()
    if (file is None) == (not (province or status or licence_type or expired_before)):
        _fail("give either --file or filters (--province, --status, --licence-type, ...)")
    ids, numbers = _read_selection_file(file) if file is not None else ([], [])
    db = _database(settings)
    bar: tqdm[Any] | None = None
    try:
        with db.begin() as conn:
            who = accounts.by_username(conn, accounts.normal_username(account)).principal
            auth.require_signed_in(who)
            lock_for_write(conn)  # the selection and the change see the same register
            if numbers:
                ids = ids_of_numbers(conn, numbers)
            elif file is None:
                ids = select_licences(
                    conn,
                    BulkSelection(
                        province=province_code(province) if province else None,
                        status=status,
                        licence_type=licence_type,
                        expired_before=date.fromisoformat(expired_before)
                        if expired_before
                        else None,
                    ),
                )
            if not ids:
                typer.echo("no licences selected; nothing was changed")
                return
            bar = tqdm(total=len(ids), unit="licence", desc=f"{action}", file=sys.stderr)
            done = bulk_transition(
                conn,
                ids,
                action,
                actor=who.actor,
                who=who,
                note=note,
                timezone=settings.register_timezone,
                progress=bar.update,
            )
    except CadastreError as exc:
        if bar is not None:
            bar.close()
        _fail(exc.message)
    except ValueError as exc:  # a malformed --expired-before
        _fail(str(exc))
    if bar is not None:
        bar.close()
    per = ", ".join(f"{code} {n}" for code, n in done.items())
    typer.echo(
        f"{action}: {sum(done.values())} licences ({per}) as {who.actor}, "
        f"in {time.perf_counter() - started:.1f} s"
    )


# ---------------------------------------------------------------------- export


@app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="Output file: .geojson, .gpkg or .csv")],
) -> None:
    """Export the current public register (one row per licence)."""
    import geopandas as gpd

    settings = _settings()
    db = _database(settings)
    query = """
        SELECT l.id, l.licence_no, l.licence_type, array_to_string(l.minerals, '; ') AS minerals,
               p.name AS holder, j.name AS province, l.status, l.area_km2, l.received_at,
               l.receipt_seq, l.applied_on, l.granted_on, l.expires_on, l.geom
        FROM licences l JOIN parties p ON p.id = l.holder_id
        JOIN jurisdictions j ON j.code = l.province_code
        WHERE l.published  -- applications held back are not in the public register
        ORDER BY l.id
    """
    with db.engine.connect() as conn:
        frame = gpd.read_postgis(query, conn, geom_col="geom")
    suffix = out.suffix.lower()
    if suffix == ".csv":
        frame.assign(wkt=frame.geometry.to_wkt()).drop(columns="geom").to_csv(out, index=False)
    elif suffix in (".geojson", ".json", ".gpkg"):
        for col in ("received_at",):
            frame[col] = frame[col].astype(str)
        driver = "GPKG" if suffix == ".gpkg" else "GeoJSON"
        frame.to_file(out, driver=driver, engine="pyogrio")
    else:
        _fail(f"unknown export format {suffix!r}: use .geojson, .gpkg or .csv")
    typer.echo(f"exported {len(frame)} licences to {out}")


# -------------------------------------------------------------------- open data

opendata_app = typer.Typer(help="Open data: dated snapshots of the public register.")
app.add_typer(opendata_app, name="opendata")


@opendata_app.command("snapshot")
def opendata_snapshot(
    root: Annotated[Path, typer.Argument(help="Directory; the snapshot goes in <root>/<date>/")],
    as_of: Annotated[
        str | None,
        typer.Option(help="The register at the end of this date (or RFC 3339 instant)"),
    ] = None,
) -> None:
    """Write a dated snapshot (CSV, GeoJSON, GeoPackage, README.md, SHA256SUMS); for cron."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from cadastre.db import opendata
    from cadastre.db.licences import end_of_day

    settings = _settings()
    tz = settings.register_timezone
    instant = None
    if as_of:
        try:
            instant = end_of_day(date.fromisoformat(as_of), tz)
        except ValueError:
            try:
                instant = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
            except ValueError:
                _fail(f"--as-of must be a date (2024-05-31) or an RFC 3339 instant; got {as_of!r}")
            if instant is not None and instant.tzinfo is None:
                _fail("--as-of date-time needs a time zone offset (e.g. Z or +05:00)")
    day = instant.astimezone(ZoneInfo(tz)).date() if instant else datetime.now(ZoneInfo(tz)).date()
    db = _database(settings)
    started = time.perf_counter()
    # One snapshot of the database for all three files: they describe the same register.
    isolated = db.engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with isolated as conn, conn.begin():
        snap = opendata.write_snapshot(conn, root, day, instant)
    for name, digest in sorted(snap.checksums.items()):
        typer.echo(f"{digest}  {snap.directory / name}")
    typer.echo(
        f"{snap.count} licences written to {snap.directory} "
        f"in {time.perf_counter() - started:.1f} s"
    )


# --------------------------------------------------------------------- webhooks

webhooks_app = typer.Typer(help="Webhooks: push the public change feed to subscribers.")
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("list")
def webhooks_list() -> None:
    """Active subscriptions with their delivery state (never their secrets)."""
    from cadastre.db import webhooks

    db = _database(_settings())
    with db.begin() as conn:
        subs = webhooks.list_subscriptions(conn)
    for s in subs:
        state = f"failing ({s['failures']}): {s['last_error']}" if s["failures"] else "ok"
        typer.echo(
            f"{s['id']}\t{s['url']}\tcursor {s['cursor']}\tdelivered {s['delivered']}\t{state}"
        )


@webhooks_app.command("deliver")
def webhooks_deliver(
    once: Annotated[bool, typer.Option(help="One round, then exit (for cron)")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between rounds")] = 2.0,
    timeout: Annotated[float, typer.Option(help="Seconds a subscriber may take to answer")] = 5.0,
) -> None:
    """Deliver due events to every subscriber, signed, in order, retrying with backoff."""
    from cadastre.db import webhooks

    db = _database(_settings())
    while True:
        sent = webhooks.deliver_due(db, timeout=timeout)
        if sent:
            typer.echo(f"{sent} events delivered")
        if once:
            return
        if not sent:
            time.sleep(interval)


# ----------------------------------------------------------------- obligations

obligations_app = typer.Typer(help="Obligations of titles: due dates, notices, expiry.")
app.add_typer(obligations_app, name="obligations")


@obligations_app.command("run")
def obligations_run(
    actor: Annotated[
        str, typer.Option("--actor", help="Name kept as the actor of the job's events")
    ] = "obligations-job",
) -> None:
    """Expire titles past their expiry date and issue notices for overdue obligations,
    in one transaction; running it again the same day changes nothing (for cron)."""
    from cadastre.db import obligations

    settings = _settings()
    started = time.perf_counter()
    db = _database(settings)
    try:
        with db.begin() as conn:
            done = obligations.run_job(
                conn,
                rules=RuleBook.load(),
                actor=actor,
                timezone=settings.register_timezone,
            )
    except CadastreError as exc:
        _fail(exc.message)
    per = ", ".join(f"{code} {n}" for code, n in done.expired.items()) or "none"
    typer.echo(
        f"obligations {done.today.isoformat()}: {sum(done.expired.values())} titles expired "
        f"({per}), {done.notices} notices issued, in {time.perf_counter() - started:.1f} s"
    )


# ----------------------------------------------------------------------- audit

audit_app = typer.Typer(help="Reports on the register.")
app.add_typer(audit_app, name="audit")


@audit_app.command("overlaps")
def audit_overlaps(
    out: Annotated[Path, typer.Argument(help="Output file: .csv or .geojson")],
    province: Annotated[str | None, typer.Option(help="Name or ISO code")] = None,
) -> None:
    """Every overlap among live exclusive titles and with reserved areas, to a file."""
    from cadastre.domain.provinces import province_code

    settings = _settings()
    rules = RuleBook.load()
    code = province_code(province) if province else None
    fields = ("kind", "a_id", "a_ref", "b_id", "b_ref", "province_code", "overlap_km2")
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".geojson"):
        _fail(f"unknown report format {suffix!r}: use .csv or .geojson")
    db = _database(settings)
    count = 0
    started = time.perf_counter()
    with (
        db.begin() as conn,
        out.open("w", newline="") as fh,
        tqdm(unit="overlap", desc="auditing", file=sys.stderr) as bar,
    ):
        rows = audit(conn, rules=rules, province=code, tolerance_m2=settings.overlap_tolerance_m2)
        writer = csv.writer(fh) if suffix == ".csv" else None
        if writer:
            writer.writerow(fields)
        else:
            fh.write('{"type":"FeatureCollection","features":[\n')
        row: AuditRow
        for row in rows:
            if writer:
                writer.writerow([getattr(row, f) for f in fields])
            else:
                props = json.dumps({f: getattr(row, f) for f in fields})
                sep = ",\n" if count else ""
                fh.write(f'{sep}{{"type":"Feature","geometry":{row.geojson},"properties":{props}}}')
            count += 1
            bar.update()
        if not writer:
            fh.write("\n]}\n")
    typer.echo(f"{count} overlaps written to {out} in {time.perf_counter() - started:.1f} s")


# ---------------------------------------------------------------------- raster

raster_app = typer.Typer(help="Raster survey layers (GeoTIFF and anything GDAL reads).")
app.add_typer(raster_app, name="raster")


@raster_app.command("import")
def raster_import(
    path: Annotated[Path, typer.Argument(help="A raster GDAL reads: GeoTIFF, .img, .asc, ...")],
    slug: Annotated[str, typer.Option(help="Identifier: a-z, 0-9, _ (starts with a letter)")],
    name: Annotated[str, typer.Option(help="Title")],
    kind: Annotated[str, typer.Option(help="geophysics, elevation, geochemistry, other, ...")],
    source: Annotated[str, typer.Option(help="Who made it, where it came from")],
    licence: Annotated[str, typer.Option(help="The data licence, e.g. CC BY 4.0")],
    units: Annotated[str | None, typer.Option(help="Units of the values, e.g. nT or m")] = None,
    description: Annotated[str | None, typer.Option(help="Free text")] = None,
    synthetic: Annotated[bool, typer.Option("--synthetic", help="Invented data")] = False,
    public: Annotated[
        bool, typer.Option("--public", help="Readable without signing in (open data)")
    ] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a raster of that slug")] = (
        False
    ),
    actor: Annotated[str, typer.Option(help="Who imports")] = "cli-import",
) -> None:
    """Import a raster as a Cloud-Optimised GeoTIFF and catalogue it; all or nothing."""
    settings = _settings()
    meta = rasters.RasterMeta(
        slug=slug,
        name=name,
        kind=kind,
        source=source,
        licence=licence,
        units=units,
        description=description,
        synthetic=synthetic,
        public=public,
    )
    started = time.perf_counter()
    try:
        entry = rasters.import_raster(
            _database(settings),
            settings.rasters,
            path,
            meta,
            actor=actor,
            replace=replace,
            progress=lambda m: typer.echo(f"{m} ...", err=True),
            progress_out=sys.stderr,
        )
    except CadastreError as exc:
        _fail(exc.message)
    info = entry["raster"]
    typer.echo(
        f"imported {slug}: {info['width']} x {info['height']} px, {info['bands']} band(s) "
        f"{info['dtype']}, {info['crs']}, in {time.perf_counter() - started:.1f} s"
    )


@raster_app.command("list")
def raster_list() -> None:
    """List the raster survey layers."""
    with _database(_settings()).begin() as conn:
        entries = rasters.list_rasters(conn, OPERATOR)
    for e in entries:
        info = e["raster"]
        flag = " SYNTHETIC" if e["synthetic"] else ""
        typer.echo(
            f"{e['slug']}\t{e['kind']}\t{info['width']}x{info['height']}\t{info['crs']}\t"
            f"{info.get('units') or ''}\t{'public' if e['public'] else 'restricted'}\t"
            f"{e['name']}{flag}"
        )
    if not entries:
        typer.echo("no raster survey layers", err=True)


@raster_app.command("delete")
def raster_delete(slug: Annotated[str, typer.Argument(help="The raster's slug")]) -> None:
    """Remove a raster survey layer and its file."""
    settings = _settings()
    try:
        rasters.delete_raster(_database(settings), settings.rasters, slug)
    except CadastreError as exc:
        _fail(exc.message)
    typer.echo(f"deleted {slug}")


# ----------------------------------------------------------------------- serve


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Default 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="Default 8000")] = None,
) -> None:
    """Serve the API (OpenAPI docs at /docs)."""
    import uvicorn

    settings = _settings()
    try:
        auth.check_secret(settings.secret_key, settings.environment)
    except CadastreError as exc:
        _fail(exc.message)
    # Our handler takes uvicorn's records too; the access log is the service's own.
    logs.configure(settings.log_format, settings.log_level)
    try:
        # By name, so that the library never imports the web layer.
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            access_log=False,
            log_config=None,
        )
    finally:
        logs.shutdown()


# -------------------------------------------------------------------- accounts

users_app = typer.Typer(help="Accounts: add, list, disable; API keys of machine clients.")
app.add_typer(users_app, name="users")
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.")
users_app.add_typer(keys_app, name="keys")


def _password(from_stdin: bool, prompt: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if prompt:
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    return None


def _users(action: Any) -> Any:
    """Run ``action(conn)`` in one transaction; a refusal is a one-line error."""
    db = _database(_settings())
    try:
        with db.begin() as conn:
            return action(conn)
    except CadastreError as exc:
        _fail(exc.message)
    finally:
        db.dispose()


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name: a-z, 0-9, . _ @ -")],
    role: Annotated[str, typer.Option(help="geologist, officer or admin")],
    province: Annotated[
        str | None, typer.Option(help="An officer's province (name or ISO code, e.g. PK-PB)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="A machine account: signs in by API key only")
    ] = False,
) -> None:
    """Add an account. People get a password (asked twice, or --password-stdin)."""
    password = _password(password_stdin, prompt=not no_password)
    account = _users(
        lambda conn: accounts.add_account(
            conn,
            username,
            role,
            province=province,
            password=password,
            display_name=name,
            created_by="cli",
        )
    )
    where = f" of {account.province}" if account.province else ""
    typer.echo(f"added {account.username}: {account.role}{where}")


@users_app.command("first-admin")
def users_first_admin(
    username: Annotated[str, typer.Option(help="Name of the first admin")] = "admin",
) -> None:
    """Create the first admin when the register has no active admin (set-up runs this):
    a random password is written to <data_dir>/first-admin-password (mode 600), never
    printed. Does nothing when an admin exists."""
    settings = _settings()
    secret_file = settings.data_dir / "first-admin-password"

    def create(conn: Any) -> bool:
        if accounts.count_admins(conn) > 0:
            return False
        password = secrets.token_urlsafe(18)
        accounts.add_account(conn, username, "admin", password=password, created_by="set-up")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret_file.touch(mode=0o600)
        secret_file.write_text(f"{username}\n{password}\n")
        return True

    if _users(create):
        typer.echo(
            f"created the first admin {username!r}; its password is in {secret_file} "
            "(sign in, then change it with `cadastre users password`)"
        )


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """Every account: name, role, province, whether disabled."""
    rows = _users(accounts.list_accounts)
    for a in rows:
        if as_json:
            typer.echo(json.dumps(a.to_dict()))
        else:
            state = "disabled" if a.disabled_at else "active"
            typer.echo(f"{a.username}\t{a.role}\t{a.province or '-'}\t{state}")


@users_app.command("disable")
def users_disable(
    username: str,
    enable: Annotated[bool, typer.Option("--enable", help="Enable it again instead")] = False,
) -> None:
    """Disable an account: its tokens and keys stop working (within seconds)."""
    account = _users(lambda conn: accounts.set_disabled(conn, username, not enable))
    typer.echo(f"{account.username}: {'disabled' if account.disabled_at else 'enabled'}")


@users_app.command("password")
def users_password(
    username: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set an account's password."""
    password = _password(password_stdin, prompt=True) or ""
    _users(lambda conn: accounts.set_password(conn, username, password))
    typer.echo(f"{username}: password set")


@keys_app.command("create")
def keys_create(
    username: str,
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'QGIS at Quetta office'")],
) -> None:
    """Create an API key for the account; it is printed once and cannot be shown again."""
    key, listing = _users(lambda conn: accounts.create_key(conn, username, name))
    typer.echo(f"created key {listing['prefix']}… for {listing['account']}", err=True)
    typer.echo(key)


@keys_app.command("list")
def keys_list(username: Annotated[str | None, typer.Argument()] = None) -> None:
    """API keys (their prefixes, never the keys) of one account or all."""
    for k in _users(lambda conn: accounts.list_keys(conn, username)):
        state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "live"
        typer.echo(f"{k['prefix']}\t{k['account']}\t{k['name']}\t{state}")


@keys_app.command("revoke")
def keys_revoke(prefix: Annotated[str, typer.Argument(help="The key's prefix, from list")]) -> None:
    """Revoke an API key."""
    _users(lambda conn: accounts.revoke_key(conn, prefix))
    typer.echo(f"revoked {prefix}")


if __name__ == "__main__":
    app()
