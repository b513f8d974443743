"""Licence files in, register rows out: GeoJSON, GeoPackage, zipped Shapefile, CSV with WKT.

Files are read with geopandas/pyogrio (GDAL). Attribute columns:

=================  ==========================================================
column             meaning
=================  ==========================================================
licence_type       key of a licence type (required)
minerals           ``;``- or ``,``-separated names (required)
holder             holder's name (required)
province           name or ISO code (optional: located from the shape)
licence_no         kept if given, else generated
status             applied (default), granted, refused, surrendered, ...
applied_on         ISO dates (optional)
granted_on
expires_on
remarks            free text (optional)
=================  ==========================================================

CSV files carry the geometry as WKT in a column named ``wkt``, ``geometry`` or
``geom``, in the CRS given with ``--crs`` (default WGS 84 lon/lat).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, text

from cadastre.db import licences as reg
from cadastre.domain.geometry import DEFAULT_LIMITS, ShapeLimits, intake_array
from cadastre.domain.lifecycle import check_status
from cadastre.domain.provinces import province_code
from cadastre.errors import CadastreError, ImportRejected, InvalidInput
from cadastre.rules import RuleBook

WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom")
REQUIRED = ("licence_type", "minerals", "holder")


@dataclass
class ImportReport:
    """What an import did: rows read, written and rejected (with reasons)."""

    read: int = 0
    imported: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def read_licence_file(path: Path, crs: str | None = None) -> tuple[gpd.GeoDataFrame, str | None]:
    """Read a licence file; returns the frame and the CRS of its coordinates.

    ``crs`` overrides what the file declares. A file with no CRS and no
    ``crs`` is taken as WGS 84 lon/lat, and implausible coordinates are then
    refused by the geometry checks.
    """
    if not path.exists():
        raise InvalidInput(f"no such file: {path}", field="file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            frame = _read_csv(path)
        else:
            # Dates as text: one impossible date is that row's problem, not the file's.
            options = {"DATE_AS_STRING": "YES"} if suffix in (".geojson", ".json") else {}
            frame = gpd.read_file(path, engine="pyogrio", datetime_as_string=True, **options)
            frame = _untruncate(frame)
    except CadastreError:
        raise
    except Exception as exc:  # GDAL's errors come in many types
        raise InvalidInput(f"cannot read {path.name}: {exc}", field="file") from exc
    declared = None
    if frame.crs is not None:
        epsg = frame.crs.to_epsg()
        declared = f"EPSG:{epsg}" if epsg else frame.crs.to_string()
        if epsg == 4326:
            declared = "OGC:CRS84"  # GDAL hands back lon/lat order
    return frame, crs or declared


COLUMNS = (
    "licence_type",
    "minerals",
    "holder",
    "province",
    "licence_no",
    "status",
    "applied_on",
    "granted_on",
    "expires_on",
    "remarks",
)


def _untruncate(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Restore column names that Shapefile's 10-character limit cut (``licence_ty``)."""
    renames = {
        name[:10]: name
        for name in COLUMNS
        if len(name) > 10 and name not in frame.columns and name[:10] in frame.columns
    }
    return frame.rename(columns=renames) if renames else frame


def _read_csv(path: Path) -> gpd.GeoDataFrame:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    column = next((c for c in table.columns if c.lower() in WKT_COLUMNS), None)
    if column is None:
        raise InvalidInput(
            f"{path.name}: a CSV import needs a WKT column named one of {', '.join(WKT_COLUMNS)}",
            field="file",
        )
    texts = table.pop(column).to_numpy()
    geoms = np.empty(len(texts), dtype=object)
    bad: list[dict[str, Any]] = []
    for i, wkt in enumerate(texts):
        try:
            geoms[i] = shapely.from_wkt(wkt) if wkt else None
        except shapely.errors.GEOSException as exc:
            geoms[i] = None
            bad.append({"row": i + 1, "code": "invalid_geometry", "detail": f"bad WKT: {exc}"})
    frame = gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(geoms), crs=None)
    frame.attrs["wkt_errors"] = bad
    return frame


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays
        return False


def _text(value: Any) -> str | None:
    if _missing(value):
        return None
    text = str(value).strip()
    return text or None


def _date(value: Any, column: str) -> date | None:
    if isinstance(value, pd.Timestamp | datetime):
        return value.date() if not _missing(value) else None
    if isinstance(value, date):
        return value
    text = _text(value)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise InvalidInput(f"{column} must be an ISO date, got {text!r}", field=column) from None


def _minerals(value: Any) -> list[str]:
    if isinstance(value, list | tuple | np.ndarray):
        items = [str(v).strip() for v in value]
    else:
        text = _text(value) or ""
        items = [m.strip() for m in text.replace(",", ";").split(";")]
    minerals = [m for m in items if m]
    if not minerals:
        raise InvalidInput("minerals is empty", field="minerals")
    return minerals


def candidate_from_row(row: dict[str, Any], shape: reg.Shape, rules: RuleBook) -> reg.Candidate:
    """Check one row's attributes and build its candidate; raises on the first problem."""
    missing = [c for c in REQUIRED if _text(row.get(c)) is None and c != "minerals"]
    if missing:
        raise InvalidInput(f"{missing[0]} is required", field=missing[0])
    licence_type = rules.check_type(str(_text(row["licence_type"])))
    province = _text(row.get("province"))
    status = check_status(_text(row.get("status")) or "applied")
    granted_on = _date(row.get("granted_on"), "granted_on")
    expires_on = _date(row.get("expires_on"), "expires_on")
    if granted_on and expires_on and expires_on <= granted_on:
        raise InvalidInput("expires_on must be after granted_on", field="expires_on")
    if status != "applied" and status != "refused" and granted_on is None:
        raise InvalidInput(f"a {status} title needs granted_on", field="granted_on")
    return reg.Candidate(
        licence_type=licence_type,
        minerals=_minerals(row.get("minerals")),
        holder=reg.Holder(name=str(_text(row["holder"]))),
        shape=shape,
        province=province_code(province) if province else None,
        licence_no=_text(row.get("licence_no")),
        status=status,
        applied_on=_date(row.get("applied_on"), "applied_on"),
        granted_on=granted_on,
        expires_on=expires_on,
        remarks=_text(row.get("remarks")),
    )


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def import_licences(
    conn: Connection,
    frame: gpd.GeoDataFrame,
    crs: str | None,
    *,
    rules: RuleBook,
    actor: str,
    skip_invalid: bool = False,
    repair: bool = False,
    tolerance_m2: float = 100.0,
    timezone: str = "Asia/Karachi",
    chunk_size: int = 20_000,
    progress: Callable[[int], object] | None = None,
    limits: ShapeLimits = DEFAULT_LIMITS,
) -> ImportReport:
    """Import every row of ``frame`` into the register in the caller's transaction.

    All or nothing: any rejected row raises :class:`ImportRejected` listing
    every rejected row (1-based, as in the file) with its reason, and the
    caller's transaction rolls back. With ``skip_invalid`` the good rows are
    imported and the rejections reported.
    """
    report = ImportReport(read=len(frame))
    rejected: dict[int, dict[str, Any]] = {
        r["row"] - 1: r for r in frame.attrs.get("wkt_errors", [])
    }
    bulk = intake_array(frame.geometry.to_numpy(), crs, repair=repair, limits=limits)
    for i, err in bulk.errors.items():
        rejected.setdefault(i, {"row": i + 1, **err.to_dict()})
    records = frame.drop(columns=frame.geometry.name).to_dict("records")
    submitted = shapely.to_wkt(frame.geometry.to_numpy(), rounding_precision=-1)
    crs_id = bulk.crs.identifier
    for chunk in _chunks(len(frame), chunk_size):
        cands: list[reg.Candidate] = []
        rows: list[int] = []
        for i in chunk:
            if i in rejected:
                continue
            shape = reg.Shape(
                geometry=bulk.geometries[i],
                submitted=str(submitted[i]),
                crs=crs_id,
                transformation=bulk.transformation.description,
                approximate=bulk.transformation.approximate,
            )
            try:
                cands.append(candidate_from_row(records[i], shape, rules))
            except CadastreError as row_error:
                rejected[i] = {"row": i + 1, **row_error.to_dict()}
                continue
            rows.append(i)
        result = reg.register_licences(
            conn,
            cands,
            rules=rules,
            actor=actor,
            action="import",
            tolerance_m2=tolerance_m2,
            timezone=timezone,
            all_or_nothing=False,
        )
        for k, db_error in result.rejected.items():
            rejected[rows[k]] = {"row": rows[k] + 1, **db_error.to_dict()}
        report.imported += len(result.created)
        if progress:
            progress(len(chunk))
    report.rejected = [rejected[i] for i in sorted(rejected)]
    if report.imported:
        # Fresh statistics, so the first queries after a bulk load use the indexes.
        conn.execute(text("ANALYZE licences, licence_versions, licence_events, parties"))
    if report.rejected and not skip_invalid:
        raise ImportRejected(report.rejected)
    return report
