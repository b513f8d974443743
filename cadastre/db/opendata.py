"""Open data: the public register as CSV, GeoJSON and GeoPackage (EITI Requirements 2.3, 7.2).

Every published licence and application with the public register fields only:
holder and beneficial owners, polygon, application and award dates, term and
expiry, commodities, type, status and province. Never the holder's contact
details, the remarks or the geometry as submitted.

Rows come from ``licence_versions`` (the state current at ``as_of``, or now)
through a server-side cursor, so an export of any size is written in constant
memory. Geometries are WGS 84 (EPSG:4326) lon/lat; areas are geodesic km².
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

#: The open licence every export is published under.
LICENCE = "Creative Commons Attribution 4.0 International (CC BY 4.0)"
LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"
ATTRIBUTION = "Pakistan Mining Cadastre (provincial mines and minerals departments)"
FORMATS = ("csv", "geojson", "gpkg")
MEDIA_TYPES = {
    "csv": "text/csv",
    "geojson": "application/geo+json",
    "gpkg": "application/geopackage+sqlite3",
}


@dataclass(frozen=True)
class Field:
    """One column of the export: its name, type and meaning (the data dictionary)."""

    name: str
    type: str
    description: str
    sql: str


_OWNERS = """coalesce((
    SELECT json_agg(json_build_object('name', b.name, 'nationality', b.nationality,
                                      'share_pct', b.share_pct) ORDER BY b.id)
    FROM beneficial_owners b WHERE b.party_id = p.id), '[]'::json)"""

FIELDS: tuple[Field, ...] = (
    Field("licence_id", "integer", "Identifier of the licence in the register.", "v.licence_id"),
    Field("licence_no", "text", "Licence or application number.", "v.licence_no"),
    Field(
        "licence_type",
        "text",
        "Type key, e.g. exploration_licence (GET /licence-types lists them).",
        "v.licence_type",
    ),
    Field(
        "status",
        "text",
        "applied, granted, refused, surrendered, cancelled or expired.",
        "v.status",
    ),
    Field("province_code", "text", "ISO 3166-2 code of the province.", "v.province_code"),
    Field("province", "text", "Name of the province or territory.", "j.name"),
    Field(
        "commodities",
        "text",
        "Minerals the licence covers, separated by '; '.",
        "array_to_string(v.minerals, '; ')",
    ),
    Field("holder", "text", "Name of the holder.", "p.name"),
    Field("holder_kind", "text", "company, individual, state or other.", "p.kind"),
    Field(
        "holder_registration_no",
        "text",
        "Company registration number of the holder, where known.",
        "p.registration_no",
    ),
    Field("holder_country", "text", "Country of the holder.", "p.country"),
    Field(
        "beneficial_owners",
        "json",
        "The holder's beneficial owners as a JSON array of {name, nationality, share_pct}, "
        "as currently declared (not versioned: an as_of export shows today's declaration).",
        _OWNERS,
    ),
    Field(
        "received_at",
        "datetime (UTC)",
        "When the application was received (server clock).",
        "v.received_at",
    ),
    Field("applied_on", "date", "Date of application.", "v.applied_on"),
    Field("granted_on", "date", "Date of award (grant); empty for applications.", "v.granted_on"),
    Field("expires_on", "date", "Expiry date of the title.", "v.expires_on"),
    Field(
        "term_years",
        "number",
        "Duration of the title from award to expiry, years (days / 365.25, 2 decimals).",
        "round(((v.expires_on - v.granted_on) / 365.25)::numeric, 2)::float8",
    ),
    Field(
        "area_km2",
        "number",
        "Geodesic area on the WGS 84 ellipsoid, km² (6 decimals).",
        "round(v.area_km2::numeric, 6)::float8",
    ),
    Field("version", "integer", "Version of the record (1 at receipt).", "v.version"),
    Field(
        "changed_at",
        "datetime (UTC)",
        "When this version of the record came into force.",
        "v.valid_from",
    ),
)
GEOMETRY_FIELD = Field(
    "geometry",
    "MultiPolygon",
    "The licence's ground, WGS 84 (EPSG:4326) lon/lat: the GeoJSON geometry, the GeoPackage "
    "geometry column, or geometry_wkt (WKT, 7 decimals, about 1 cm) in CSV.",
    "v.geom",
)
NAMES = tuple(f.name for f in FIELDS)

_WHERE_NOW = "v.valid_to IS NULL"
_WHERE_AS_OF = "v.valid_from <= :as_of AND (v.valid_to IS NULL OR v.valid_to > :as_of)"
_FROM = """
    FROM licence_versions v
    JOIN parties p ON p.id = v.holder_id
    JOIN jurisdictions j ON j.code = v.province_code
    WHERE v.published AND {where}
    ORDER BY v.licence_id
"""


def _columns(json_owners: bool) -> str:
    return ", ".join(
        f"{f.sql}{'' if json_owners or f.type != 'json' else '::text'} AS {f.name}" for f in FIELDS
    )


def _rows_sql(geometry: str, where: str) -> str:
    return f"SELECT {_columns(False)}, {geometry} AS geometry {_FROM.format(where=where)}"


def feature_sql() -> str:
    """SQL expression of one licence version ``v`` (with its holder ``p`` and province ``j``)
    as a GeoJSON Feature (text) with the public register fields."""
    props = ", ".join(f"'{f.name}', {f.sql}" for f in FIELDS if f.name != "licence_id")
    # json_build_object takes at most 100 arguments: 20 pairs here.
    return f"""('{{"type":"Feature","id":' || v.licence_id || ',"geometry":'
               || ST_AsGeoJSON(v.geom, 7) || ',"properties":'
               || json_build_object('licence_id', v.licence_id, {props})::text || '}}')"""


def _features_sql(where: str) -> str:
    return f"SELECT {feature_sql()} {_FROM.format(where=where)}"


_SQL = {
    (kind, as_of): text(
        _features_sql(where)
        if kind == "geojson"
        else _rows_sql("ST_AsText(v.geom, 7)" if kind == "csv" else "ST_AsBinary(v.geom)", where)
    )
    for kind in FORMATS
    for as_of, where in ((False, _WHERE_NOW), (True, _WHERE_AS_OF))
}


def _stream(conn: Connection, kind: str, as_of: datetime | None, batch: int) -> Iterator[Any]:
    sql = _SQL[(kind, as_of is not None)]
    result = conn.execute(
        sql.execution_options(stream_results=True, yield_per=batch), {"as_of": as_of}
    )
    yield from result


# ---------------------------------------------------------------------- writers


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def csv_chunks(conn: Connection, as_of: datetime | None = None, batch: int = 2000) -> Iterator[str]:
    """The public register as CSV text chunks (header first), geometry as ``geometry_wkt``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*NAMES, "geometry_wkt"])
    for n, row in enumerate(_stream(conn, "csv", as_of, batch), 1):
        writer.writerow([_csv_value(v) for v in row])
        if n % batch == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def geojson_chunks(
    conn: Connection, as_of: datetime | None = None, batch: int = 2000
) -> Iterator[str]:
    """The public register as one GeoJSON FeatureCollection, in text chunks.

    The collection carries its licence, attribution and ``as_of`` as foreign members.
    """
    head = {
        "type": "FeatureCollection",
        "name": "licences",
        "licence": LICENCE,
        "licence_url": LICENCE_URL,
        "attribution": ATTRIBUTION,
        "as_of": as_of.isoformat() if as_of else None,
        "data_dictionary": "/opendata/README",
    }
    parts = [json.dumps(head)[:-1] + ',"features":[']
    for n, (feature,) in enumerate(_stream(conn, "geojson", as_of, batch)):
        parts.append(("," if n else "") + feature)
        if len(parts) >= batch:
            yield "".join(parts)
            parts = []
    parts.append("]}\n")
    yield "".join(parts)


_DATES = {f.name for f in FIELDS if f.type == "date"}
_TIMES = {f.name for f in FIELDS if f.type.startswith("datetime")}
_NUMBERS = {f.name for f in FIELDS if f.type == "number"}
_INTEGERS = {f.name for f in FIELDS if f.type == "integer"}


def _column(name: str, values: list[Any]) -> np.ndarray[Any, Any]:
    if name in _DATES:
        return np.array([v.isoformat() if v else None for v in values], dtype="datetime64[D]")
    if name in _TIMES:
        return np.array(
            [v.astimezone(UTC).replace(tzinfo=None) if v else None for v in values],
            dtype="datetime64[ms]",
        )
    if name in _NUMBERS:
        return np.array([np.nan if v is None else v for v in values], dtype="float64")
    if name in _INTEGERS:
        return np.array(values, dtype="int64")
    return np.array(values, dtype=object)


def write_gpkg(
    conn: Connection, path: Path, as_of: datetime | None = None, batch: int = 5000
) -> int:
    """Write the public register to a GeoPackage (layer ``licences``), ``batch`` rows at a
    time, so memory stays constant whatever the register's size. Returns the row count."""
    from pyogrio.raw import write

    count = 0
    rows: list[Any] = []

    def flush() -> None:
        columns = list(zip(*rows, strict=True))
        write(
            str(path),
            np.array([bytes(g) for g in columns[-1]], dtype=object),
            [_column(n, list(c)) for n, c in zip(NAMES, columns[:-1], strict=True)],
            list(NAMES),
            geometry_type="MultiPolygon",
            crs="EPSG:4326",
            driver="GPKG",
            layer="licences",
            append=count > len(rows),
        )

    for row in _stream(conn, "gpkg", as_of, batch):
        rows.append(tuple(row))
        count += 1
        if len(rows) == batch:
            flush()
            rows = []
    if rows:
        flush()
    if count == 0:  # an empty layer still has the schema
        write(
            str(path),
            np.array([], dtype=object),
            [_column(n, []) for n in NAMES],
            list(NAMES),
            geometry_type="MultiPolygon",
            crs="EPSG:4326",
            driver="GPKG",
            layer="licences",
        )
    return count


# ------------------------------------------------------------------ dictionary


def readme(as_of: datetime | None = None) -> str:
    """The data dictionary and licence statement (Markdown)."""
    lines = [
        "# Pakistan mining cadastre: the public register as open data",
        "",
        "Every published mineral licence and application of the register (EITI Requirements "
        "2.3 and 7.2): one row per licence, in the state it had "
        + (f"at {as_of.isoformat()}." if as_of else "when the file was made."),
        "Applications an officer has held back from publication are not included.",
        "",
        "## Licence",
        "",
        f"{LICENCE}: <{LICENCE_URL}>. Attribute as: {ATTRIBUTION}.",
        "",
        "## Files",
        "",
        "* `licences.csv`: UTF-8, comma-separated, header row; geometry as `geometry_wkt`.",
        "* `licences.geojson`: RFC 7946 FeatureCollection; `beneficial_owners` is an array.",
        "* `licences.gpkg`: GeoPackage, layer `licences`, EPSG:4326.",
        "",
        "`GET /opendata/licences.{csv,geojson,gpkg}?as_of=2024-05-31` gives the register as it "
        "stood at the end of that day (Asia/Karachi) or at an RFC 3339 instant.",
        "",
        "## Fields",
        "",
        "| field | type | meaning |",
        "|---|---|---|",
        *(f"| `{f.name}` | {f.type} | {f.description} |" for f in (*FIELDS, GEOMETRY_FIELD)),
        "",
        "Empty cells are unknown or not applicable. Dates are calendar dates; date-times are "
        "UTC (ISO 8601).",
        "",
    ]
    return "\n".join(lines)


# -------------------------------------------------------------------- snapshot


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """A dated snapshot: its directory, the files with their SHA-256, the row count."""

    directory: Path
    checksums: dict[str, str]
    count: int


def write_snapshot(
    conn: Connection, root: Path, day: date, as_of: datetime | None = None
) -> Snapshot:
    """Write ``root/<day>/`` with the three formats, README.md and SHA256SUMS.

    All three files are read in the caller's transaction (use REPEATABLE READ for one
    consistent register across them). ``SHA256SUMS`` is in ``sha256sum -c`` format.
    Files are written under temporary names and renamed, so a mirror never copies a
    half-written file that the checksum list names.
    """
    out = root / day.isoformat()
    out.mkdir(parents=True, exist_ok=True)
    names = {"csv": "licences.csv", "geojson": "licences.geojson", "gpkg": "licences.gpkg"}
    tmp = {k: out / f".partial.{v}" for k, v in names.items()}
    for p in tmp.values():
        p.unlink(missing_ok=True)
    with tmp["csv"].open("w", encoding="utf-8", newline="") as fh:
        for chunk in csv_chunks(conn, as_of):
            fh.write(chunk)
    with tmp["geojson"].open("w", encoding="utf-8") as fh:
        for chunk in geojson_chunks(conn, as_of):
            fh.write(chunk)
    count = write_gpkg(conn, tmp["gpkg"], as_of)
    tmp["readme"] = out / ".partial.README.md"
    tmp["readme"].write_text(readme(as_of), encoding="utf-8")
    names["readme"] = "README.md"
    checksums = {}
    for key, partial in tmp.items():
        final = out / names[key]
        partial.replace(final)
        checksums[names[key]] = sha256_file(final)
    sums = "".join(f"{digest}  {name}\n" for name, digest in sorted(checksums.items()))
    (out / "SHA256SUMS").write_text(sums, encoding="utf-8")
    return Snapshot(out, checksums, count)
