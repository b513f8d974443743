"""The licence register: applications and titles, their versions and their events.

Every function here takes an open :class:`~sqlalchemy.Connection` inside a
transaction and leaves committing to the caller, so that a change, its version
row and its event commit together or not at all.

The write path is set-based for one licence or a hundred thousand alike:
candidates are staged in a temporary table, located against the province
polygons in one query, numbered, inserted, versioned and logged with a handful
of statements.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import shapely
from sqlalchemy import Connection, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.types import BigInteger, Text

from cadastre.auth import PUBLIC, Principal, require_licence_writer
from cadastre.db.generation import lock_for_write
from cadastre.db.overlaps import check_grant
from cadastre.db.tables import (
    beneficial_owners,
    licence_events,
    licence_versions,
    licences,
    parties,
)
from cadastre.domain.geometry import Intake
from cadastre.domain.lifecycle import TRANSITIONS, allowed_actions, check_status, next_status
from cadastre.domain.provinces import PROVINCES
from cadastre.errors import (
    AreaLimitExceeded,
    CadastreError,
    Conflict,
    DuplicateLicenceNo,
    IllegalTransition,
    ImportRejected,
    InvalidInput,
    NotFound,
    OutsideArea,
    ProvinceMismatch,
)
from cadastre.rules import RuleBook

# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Holder:
    """A holder named in a submission; found by name (case-insensitive) or created."""

    name: str
    kind: str = "company"
    registration_no: str | None = None
    country: str | None = None
    contact: Mapping[str, Any] | None = None
    beneficial_owners: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class Shape:
    """A licence's ground as taken in, and as it was submitted.

    ``geometry`` is a shapely MultiPolygon in EPSG:4326 (lon/lat, exterior
    rings counter-clockwise); ``submitted`` is the geometry exactly as received
    (GeoJSON text or WKT) in ``crs``, reprojected by ``transformation``.
    """

    geometry: Any
    submitted: str
    crs: str
    transformation: str
    approximate: bool = False

    @classmethod
    def from_intake(cls, taken: Intake) -> Shape:
        submitted = taken.submitted
        return cls(
            geometry=taken.geometry,
            submitted=submitted if isinstance(submitted, str) else json.dumps(submitted),
            crs=taken.crs.identifier,
            transformation=taken.transformation.description,
            approximate=taken.transformation.approximate,
        )


@dataclass(frozen=True)
class Candidate:
    """One licence to enter the register, its ground already taken in."""

    licence_type: str
    minerals: Sequence[str]
    holder: Holder | int
    shape: Shape
    province: str | None = None
    licence_no: str | None = None
    status: str = "applied"
    applied_on: date | None = None
    granted_on: date | None = None
    expires_on: date | None = None
    remarks: str | None = None
    #: In the public register from receipt; an officer may hold an application back.
    published: bool = True


@dataclass
class RegisterResult:
    """What a batch write did: created licence ids by input position, and rejections."""

    created: dict[int, int] = field(default_factory=dict)
    rejected: dict[int, CadastreError] = field(default_factory=dict)


# ------------------------------------------------------------------ staging & checks

_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS licence_intake (
    ord integer PRIMARY KEY,
    geom geometry(MultiPolygon, 4326) NOT NULL,
    licence_no text,
    licence_type text NOT NULL,
    minerals text[] NOT NULL,
    holder_id bigint,
    holder_name text,
    declared_province text,
    province_code text,
    status text NOT NULL,
    submitted_geometry text NOT NULL,
    submitted_crs text NOT NULL,
    transformation text NOT NULL,
    approximate_transformation boolean NOT NULL,
    applied_on date,
    granted_on date,
    expires_on date,
    remarks text,
    published boolean NOT NULL,
    receipt_seq integer
) ON COMMIT DROP
"""

_STAGE_COLUMNS = (
    "ord",
    "geom",
    "licence_no",
    "licence_type",
    "minerals",
    "holder_id",
    "holder_name",
    "declared_province",
    "status",
    "submitted_geometry",
    "submitted_crs",
    "transformation",
    "approximate_transformation",
    "applied_on",
    "granted_on",
    "expires_on",
    "remarks",
    "published",
)

# Area of each candidate inside each province, from the subdivided province
# parts; a part that covers the candidate contributes it whole without an
# intersection. Shares are taken from planar areas (additive to rounding, where
# geodesic areas of pieces do not sum exactly to the whole) and scaled to the
# candidate's geodesic area in m².
_LOCATE_BODY = """
hits AS (
        SELECT i.ord, p.code,
               sum(CASE WHEN ST_CoveredBy(i.geom, p.geom) THEN ST_Area(i.geom)
                        ELSE ST_Area(ST_Intersection(i.geom, p.geom)) END) AS planar
        FROM licence_intake i
        JOIN jurisdiction_parts p ON ST_Intersects(i.geom, p.geom)
        GROUP BY i.ord, p.code
    ), sized AS (
        SELECT ord, ST_Area(geom::geography) AS total_m2, ST_Area(geom) AS planar
        FROM licence_intake
    )
    SELECT s.ord, s.total_m2,
           coalesce(jsonb_object_agg(h.code, s.total_m2 * h.planar / s.planar)
                    FILTER (WHERE h.code IS NOT NULL), '{}') AS by_province
    FROM sized s LEFT JOIN hits h USING (ord)
    GROUP BY s.ord, s.total_m2
    ORDER BY s.ord
"""
_LOCATE_SQL = text("WITH " + _LOCATE_BODY)
# One candidate needs no staging table: a CTE of the same name stands in for it.
_LOCATE_ONE_SQL = text(
    "WITH licence_intake AS (SELECT 0 AS ord, ST_GeomFromEWKB(decode(:wkb, 'hex')) AS geom), "
    + _LOCATE_BODY
)


def _ewkb(geometry: Any) -> str:
    """Hex EWKB with SRID 4326."""
    return str(shapely.to_wkb(shapely.set_srid(geometry, 4326), hex=True, include_srid=True))


def _pg_array(values: Sequence[str]) -> str:
    items = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(items) + "}"


def _stage(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    conn.execute(text("DROP TABLE IF EXISTS licence_intake"))
    conn.execute(text(_STAGE_DDL))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerows(rows)
    buf.seek(0)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cur: Any = raw.cursor()
    try:
        cur.copy_expert(
            f"COPY licence_intake ({', '.join(_STAGE_COLUMNS)}) FROM STDIN WITH (FORMAT csv)",
            buf,
        )
    finally:
        cur.close()


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def _km2(m2: float) -> float:
    return round(m2 / 1e6, 6)


def _locate(
    conn: Connection,
    cands: Mapping[int, Candidate],
    rules: RuleBook,
    tolerance_m2: float,
    one: str | None = None,
) -> tuple[dict[int, str], dict[int, CadastreError]]:
    """Province of each staged candidate, or why it cannot be placed."""
    found: dict[int, str] = {}
    errors: dict[int, CadastreError] = {}
    if one is None:
        located = conn.execute(_LOCATE_SQL)
    else:
        located = conn.execute(_LOCATE_ONE_SQL, {"wkb": one})
    for ord_, total_m2, by_province in located:
        cand = cands[ord_]
        inside = {code: m2 for code, m2 in by_province.items() if m2 > tolerance_m2}
        outside_m2 = total_m2 - sum(by_province.values())
        if outside_m2 > tolerance_m2:
            errors[ord_] = OutsideArea(
                f"{_km2(outside_m2)} km² of the shape ({100 * outside_m2 / total_m2:.1f} %) "
                "lies outside Pakistan: check the coordinate order and the CRS",
                field="geometry",
                where={"outside_km2": _km2(outside_m2), "area_km2": _km2(total_m2)},
            )
            continue
        if len(inside) > 1:
            parts = ", ".join(
                f"{PROVINCES[c]} {_km2(m2)} km²"
                for c, m2 in sorted(inside.items(), key=lambda kv: -kv[1])
            )
            errors[ord_] = ProvinceMismatch(
                f"the shape crosses a provincial boundary ({parts}); a licence lies in "
                "one province",
                field="geometry",
                where={"provinces": {c: _km2(m2) for c, m2 in inside.items()}},
            )
            continue
        if not inside:
            errors[ord_] = OutsideArea(
                "the shape is smaller than the boundary tolerance and cannot be placed",
                field="geometry",
            )
            continue
        (code,) = inside
        if cand.province is not None and cand.province != code:
            errors[ord_] = ProvinceMismatch(
                f"the shape lies in {PROVINCES[code]} ({code}), not in "
                f"{PROVINCES[cand.province]} ({cand.province}) as declared",
                field="properties.province",
                where={"declared": cand.province, "located": code},
            )
            continue
        limit = rules.rule(cand.licence_type, code).max_area_km2
        if limit is not None and total_m2 / 1e6 > limit:
            rule = rules.rule(cand.licence_type, code)
            errors[ord_] = AreaLimitExceeded(
                f"area {_km2(total_m2)} km² exceeds the limit of {limit} km² for "
                f"{cand.licence_type} in {PROVINCES[code]} "
                f"(source: {rule.sources.get('max_area_km2', 'configuration')})",
                field="geometry",
                where={"area_km2": _km2(total_m2), "max_area_km2": limit, "located": code},
            )
            continue
        found[ord_] = code
    return found, errors


# ---------------------------------------------------------------------- parties


def resolve_holders(conn: Connection, holders: Sequence[Holder | int]) -> list[int]:
    """Party id of each holder: ids are checked, names found or created.

    New parties are created with their details and beneficial owners; an
    existing party (same name, ignoring case) is reused unchanged.
    """
    ids = sorted({h for h in holders if isinstance(h, int)})
    if ids:
        known = set(conn.scalars(select(parties.c.id).where(parties.c.id.in_(ids))))
        missing = [i for i in ids if i not in known]
        if missing:
            raise NotFound(f"no party with id {missing[0]}", field="properties.holder")
    named: dict[str, Holder] = {}
    for h in holders:
        if isinstance(h, Holder):
            named.setdefault(h.name.strip().lower(), h)
    if named:
        new = [
            {
                "name": h.name.strip(),
                "kind": h.kind,
                "registration_no": h.registration_no,
                "country": h.country,
                "contact": dict(h.contact) if h.contact else None,
            }
            for h in named.values()
        ]
        stmt = insert(parties).on_conflict_do_nothing(index_elements=[func.lower(parties.c.name)])
        conn.execute(stmt.returning(parties.c.id), new)
        id_by_name = dict(
            conn.execute(
                select(func.lower(parties.c.name), parties.c.id).where(
                    func.lower(parties.c.name).in_(list(named))
                )
            ).all()
        )
        owners = [
            {"party_id": id_by_name[key], **dict(o)}
            for key, h in named.items()
            for o in h.beneficial_owners
        ]
        if owners:
            existing = set(
                conn.scalars(
                    select(beneficial_owners.c.party_id).where(
                        beneficial_owners.c.party_id.in_({o["party_id"] for o in owners})
                    )
                )
            )
            fresh = [o for o in owners if o["party_id"] not in existing]
            if fresh:
                conn.execute(insert(beneficial_owners), fresh)
    return [h if isinstance(h, int) else id_by_name[h.name.strip().lower()] for h in holders]


# ------------------------------------------------------------------------ writes


def _stage_candidates(
    conn: Connection, cands: Mapping[int, Candidate], holder_ids: Sequence[int | None]
) -> None:
    rows = [
        (
            i,
            _ewkb(c.shape.geometry),
            _csv_value(c.licence_no),
            c.licence_type,
            _pg_array(list(c.minerals)),
            _csv_value(holder_ids[i]),
            "",
            _csv_value(c.province),
            c.status,
            c.shape.submitted,
            c.shape.crs,
            c.shape.transformation,
            "t" if c.shape.approximate else "f",
            _csv_value(c.applied_on),
            _csv_value(c.granted_on),
            _csv_value(c.expires_on),
            _csv_value(c.remarks),
            "t" if c.published else "f",
        )
        for i, c in cands.items()
    ]
    _stage(conn, rows)


def place(
    conn: Connection,
    candidates: Sequence[Candidate],
    *,
    rules: RuleBook,
    tolerance_m2: float = 100.0,
) -> tuple[dict[int, str], dict[int, CadastreError]]:
    """Province of each candidate, or why it cannot be placed; writes nothing lasting.

    The checks are those of :func:`register_licences`: inside Pakistan, in one
    province (the declared one, if declared), within the type's area limit.
    """
    cands = dict(enumerate(candidates))
    if len(cands) == 1:
        return _locate(conn, cands, rules, tolerance_m2, one=_ewkb(cands[0].shape.geometry))
    _stage_candidates(conn, cands, [None] * len(cands))
    return _locate(conn, cands, rules, tolerance_m2)


def register_licences(
    conn: Connection,
    candidates: Sequence[Candidate],
    *,
    rules: RuleBook,
    actor: str,
    action: str = "apply",
    tolerance_m2: float = 100.0,
    timezone: str = "Asia/Karachi",
    all_or_nothing: bool = True,
) -> RegisterResult:
    """Enter ``candidates`` into the register as one set-based write.

    Each candidate is placed in its province (it must lie inside Pakistan, in
    one province, and match a declared province), checked against the area
    limit of its type there, given the next receipt number of that province,
    a receipt time (server clock, microseconds) and a licence number when it
    has none. A version row and an event are written for each.

    With ``all_or_nothing`` any rejection raises :class:`ImportRejected` (or,
    for a single candidate, its own error) before anything is written.
    Otherwise the good candidates are written and the rejections returned.
    """
    result = RegisterResult()
    if not candidates:
        return result
    for cand in candidates:
        rules.check_type(cand.licence_type)
        check_status(cand.status)
    lock_for_write(conn)
    cands = dict(enumerate(candidates))
    _stage_candidates(conn, cands, [None] * len(cands))
    found, rejected = _locate(conn, cands, rules, tolerance_m2)
    _check_duplicates(conn, cands, rejected)
    if rejected and all_or_nothing:
        _raise(rejected, len(candidates))
    result.rejected = rejected
    if rejected:
        conn.execute(
            text("DELETE FROM licence_intake WHERE ord = ANY(:ords)"),
            {"ords": list(rejected)},
        )
    if not found.keys() - rejected.keys():
        return result
    # Holders are resolved only for rows that stay, so a rejected row leaves no party.
    ords = [i for i in found if i not in rejected]
    holder_ids = resolve_holders(conn, [cands[i].holder for i in ords])
    conn.execute(
        text(
            "UPDATE licence_intake i SET province_code = v.code, holder_id = v.holder "
            "FROM unnest(CAST(:ords AS int[]), CAST(:codes AS text[]), "
            "CAST(:holders AS bigint[])) AS v(ord, code, holder) "
            "WHERE i.ord = v.ord"
        ),
        {"ords": ords, "codes": [found[i] for i in ords], "holders": holder_ids},
    )
    _number(conn, rules, timezone)
    ids = _insert(conn)
    result.created = ids
    snapshot(conn, list(ids.values()))
    _log_created(conn, list(ids.values()), action=action, actor=actor)
    return result


def _raise(rejected: Mapping[int, CadastreError], total: int) -> None:
    if total == 1:
        raise next(iter(rejected.values()))
    raise ImportRejected([{"row": i, **err.to_dict()} for i, err in sorted(rejected.items())])


def _check_duplicates(
    conn: Connection, cands: Mapping[int, Candidate], rejected: dict[int, CadastreError]
) -> None:
    seen: dict[str, int] = {}
    for i, c in cands.items():
        if c.licence_no is None:
            continue
        if c.licence_no in seen:
            rejected.setdefault(
                i,
                DuplicateLicenceNo(
                    f"licence number {c.licence_no!r} appears twice "
                    f"(also at row {seen[c.licence_no]})",
                    field="properties.licence_no",
                ),
            )
        seen.setdefault(c.licence_no, i)
    for ord_, no in conn.execute(
        text("SELECT i.ord, i.licence_no FROM licence_intake i JOIN licences l USING (licence_no)")
    ):
        rejected.setdefault(
            ord_,
            DuplicateLicenceNo(
                f"licence number {no!r} is already in the register",
                field="properties.licence_no",
            ),
        )


def _number(conn: Connection, rules: RuleBook, timezone: str) -> None:
    """Give each staged licence the next receipt numbers of its province.

    The counter row of a province stays locked until commit, so receipts of
    one province are numbered in the order their transactions commit.
    """
    conn.execute(
        text(
            """
            INSERT INTO receipt_counters AS rc (province_code, last_seq)
            SELECT province_code, count(*) FROM licence_intake GROUP BY province_code
            ORDER BY province_code
            ON CONFLICT (province_code) DO UPDATE SET last_seq = rc.last_seq + excluded.last_seq
            """
        )
    )
    conn.execute(
        text(
            """
            UPDATE licence_intake i
            SET receipt_seq = c.last_seq - n.cnt + n.rn
            FROM (SELECT ord, province_code,
                         row_number() OVER (PARTITION BY province_code ORDER BY ord) AS rn,
                         count(*) OVER (PARTITION BY province_code) AS cnt
                  FROM licence_intake) n
            JOIN receipt_counters c USING (province_code)
            WHERE i.ord = n.ord
            """
        )
    )
    abbreviations = {key: rules.rule(key).abbreviation for key in rules.types}
    conn.execute(
        text(
            """
            UPDATE licence_intake
            SET licence_no = split_part(province_code, '-', 2) || '-'
                || (CAST(:abbr AS jsonb) ->> licence_type) || '-'
                || to_char(clock_timestamp() AT TIME ZONE :tz, 'YYYY') || '-'
                || lpad(receipt_seq::text, 6, '0')
            WHERE licence_no IS NULL
            """
        ),
        {"abbr": json.dumps(abbreviations), "tz": timezone},
    )


def _insert(conn: Connection) -> dict[int, int]:
    rows = conn.execute(
        text(
            """
            INSERT INTO licences (licence_no, licence_type, minerals, holder_id, province_code,
                status, geom, submitted_geometry, submitted_crs, transformation,
                approximate_transformation, received_at, receipt_seq, applied_on, granted_on,
                expires_on, remarks, published, version, changed_at)
            SELECT licence_no, licence_type, minerals, holder_id, province_code, status,
                ST_SetSRID(geom, 4326), submitted_geometry, submitted_crs, transformation,
                approximate_transformation, clock_timestamp(), receipt_seq, applied_on,
                granted_on, expires_on, nullif(remarks, ''), published OR status NOT IN
                ('applied', 'refused'), 1, now()
            FROM (SELECT * FROM licence_intake ORDER BY province_code, receipt_seq) s
            RETURNING id, licence_no
            """
        )
    ).all()
    by_no: dict[str, int] = dict(
        conn.execute(text("SELECT licence_no, ord FROM licence_intake")).all()
    )
    return {by_no[no]: id_ for id_, no in rows}


def snapshot(conn: Connection, ids: Sequence[int]) -> None:
    """Close the current version of each licence and record its new state."""
    if not ids:
        return
    id_param = bindparam("ids", value=list(ids), type_=ARRAY(BigInteger))
    conn.execute(
        update(licence_versions)
        .where(licence_versions.c.licence_id == func.any(id_param))
        .where(licence_versions.c.valid_to.is_(None))
        .values(valid_to=func.now())
    )
    state = [c for c in licences.c if c.name in licence_versions.c and c.computed is None]
    conn.execute(
        licence_versions.insert().from_select(
            ["licence_id", *(c.name for c in state), "valid_from"],
            select(licences.c.id, *state, licences.c.changed_at).where(
                licences.c.id == func.any(id_param)
            ),
        )
    )


_EVENT_FIELDS = (
    "licence_no",
    "licence_type",
    "minerals",
    "holder_id",
    "province_code",
    "status",
    "area_km2",
    "received_at",
    "receipt_seq",
    "applied_on",
    "granted_on",
    "expires_on",
    "remarks",
    "published",
)


def _state_json() -> str:
    pairs = ", ".join(f"'{f}', l.{f}" for f in _EVENT_FIELDS)
    return f"jsonb_build_object({pairs}, 'geometry', ST_AsGeoJSON(l.geom, 9)::jsonb)"


# Fixed SQL text, built once from the constant field list above.
_STATE_SQL = text(f"SELECT {_state_json()} FROM licences l WHERE l.id = :id")  # noqa: S608
_LOG_CREATED_SQL = text(
    "INSERT INTO licence_events (licence_id, version, action, actor, before, after) "
    + f"SELECT l.id, l.version, :action, :actor, NULL, {_state_json()} "
    + "FROM licences l WHERE l.id = ANY(:ids) ORDER BY l.id"
)


def _log_created(conn: Connection, ids: Sequence[int], *, action: str, actor: str) -> None:
    conn.execute(
        _LOG_CREATED_SQL,
        {"action": action, "actor": actor, "ids": list(ids)},
    )


# ------------------------------------------------------------------- transitions


def _lock(conn: Connection, licence_id: int) -> dict[str, Any]:
    row = conn.execute(
        select(licences, func.ST_AsGeoJSON(licences.c.geom, 9).label("geojson"))
        .where(licences.c.id == licence_id)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"no licence with id {licence_id}")
    return dict(row._mapping)


def province_of(conn: Connection, licence_id: int) -> str:
    """The province a licence belongs to (404 when there is no such licence)."""
    code = conn.execute(
        select(licences.c.province_code).where(licences.c.id == licence_id)
    ).scalar_one_or_none()
    if code is None:
        raise NotFound(f"no licence with id {licence_id}")
    return str(code)


def _today(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()


def register_today(tz: str) -> date:
    """Today in the register's time zone ``tz`` (the day due dates and expiry are taken on)."""
    return _today(tz)


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def _apply_change(
    conn: Connection,
    licence_id: int,
    changes: Mapping[str, Any],
    *,
    action: str,
    actor: str,
    note: str | None,
) -> None:
    """Write ``changes`` to a locked licence, with its new version and its event.

    The event keeps the fields that changed, before and after (the geometry
    as GeoJSON when the ground changed).
    """
    before = conn.execute(_STATE_SQL, {"id": licence_id}).scalar_one()
    values = {**changes, "version": licences.c.version + 1, "changed_at": func.now()}
    conn.execute(update(licences).where(licences.c.id == licence_id).values(**values))
    snapshot(conn, [licence_id])
    after = conn.execute(_STATE_SQL, {"id": licence_id}).scalar_one()
    changed = [k for k in after if before.get(k) != after[k]]
    conn.execute(
        insert(licence_events).values(
            licence_id=licence_id,
            version=select(licences.c.version).where(licences.c.id == licence_id).scalar_subquery(),
            action=action,
            actor=actor,
            before={k: before.get(k) for k in changed},
            after={k: after[k] for k in changed},
            note=note,
        )
    )


MAX_TERM_YEARS = 99


def _check_term(start: date, expires_on: date) -> None:
    if expires_on > _add_years(start, MAX_TERM_YEARS):
        raise InvalidInput(
            f"expires_on {expires_on.isoformat()} is more than {MAX_TERM_YEARS} years after "
            f"{start.isoformat()}",
            field="expires_on",
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Transition:
    """A lifecycle action with its arguments (only those the action uses)."""

    action: str
    granted_on: date | None = None
    expires_on: date | None = None
    holder: Holder | int | None = None
    retained: Shape | None = None
    note: str | None = None


def transition(
    conn: Connection,
    licence_id: int,
    t: Transition,
    *,
    rules: RuleBook,
    actor: str,
    timezone: str = "Asia/Karachi",
    tolerance_m2: float = 100.0,
    overlap_tolerance_m2: float = 100.0,
) -> None:
    """Apply a lifecycle action to a licence (see :mod:`cadastre.domain.lifecycle`).

    A grant re-checks the ground: it is refused (409, naming the title) where an
    exclusive title already holds more than ``overlap_tolerance_m2`` of it.

    Raises :class:`IllegalTransition` (naming the current status and the
    allowed actions) when the action is not allowed from the current status.
    """
    lock_for_write(conn)
    row = _lock(conn, licence_id)
    status = next_status(row["status"], t.action)
    rule = rules.rule(row["licence_type"], row["province_code"])
    today = _today(timezone)
    changes: dict[str, Any] = {"status": status} if status != row["status"] else {}

    if t.action == "grant":
        check_grant(conn, licence_id, rules=rules, tolerance_m2=overlap_tolerance_m2)
        granted_on = t.granted_on or today
        # An earlier date is allowed: paper registers are entered after the fact.
        if granted_on > today:
            raise InvalidInput(
                f"granted_on {granted_on.isoformat()} is in the future", field="granted_on"
            )
        expires_on = t.expires_on
        if expires_on is None:
            if rule.term_years is None:
                raise InvalidInput(
                    f"expires_on is required: the term of {row['licence_type']} in "
                    f"{PROVINCES[row['province_code']]} is not configured",
                    field="expires_on",
                )
            expires_on = _add_years(granted_on, rule.term_years)
        if expires_on <= granted_on:
            raise InvalidInput("expires_on must be after granted_on", field="expires_on")
        _check_term(granted_on, expires_on)
        # A title is public: granting publishes an application held back.
        changes |= {"granted_on": granted_on, "expires_on": expires_on, "published": True}
    elif t.action == "renew":
        if rule.renewable is False:
            raise Conflict(
                f"{row['licence_type']} is not renewable in {PROVINCES[row['province_code']]} "
                f"(source: {rule.sources.get('renewable')})",
                field="action",
            )
        expires_on = t.expires_on
        if expires_on is None:
            term = rule.renewal_term_years or rule.term_years
            if term is None or row["expires_on"] is None:
                raise InvalidInput(
                    "expires_on is required: no renewal term is configured for "
                    f"{row['licence_type']} in {PROVINCES[row['province_code']]}",
                    field="expires_on",
                )
            expires_on = _add_years(row["expires_on"], term)
        if row["expires_on"] is not None and expires_on <= row["expires_on"]:
            raise InvalidInput(
                f"a renewal must extend the term beyond {row['expires_on'].isoformat()}",
                field="expires_on",
            )
        _check_term(row["granted_on"] or today, expires_on)
        changes["expires_on"] = expires_on
    elif t.action == "transfer":
        if t.holder is None:
            raise InvalidInput("a transfer names the new holder", field="holder")
        (new_holder,) = resolve_holders(conn, [t.holder])
        if new_holder == row["holder_id"]:
            raise InvalidInput("the new holder is already the holder", field="holder")
        changes["holder_id"] = new_holder
    elif t.action == "relinquish":
        if t.retained is None:
            raise InvalidInput(
                "a partial relinquishment gives the ground that is retained", field="geometry"
            )
        changes |= _relinquish(conn, licence_id, t.retained)
    elif t.action == "expire" and (row["expires_on"] is None or row["expires_on"] >= today):
        when = row["expires_on"].isoformat() if row["expires_on"] else "no expiry date"
        raise Conflict(f"licence {row['licence_no']} has not expired yet ({when})", field="action")
    _apply_change(conn, licence_id, changes, action=t.action, actor=actor, note=t.note)


#: Retained ground may stick out of the licence by rounding only (m²), never enough to grow it.
RELINQUISH_TOLERANCE_M2 = 1.0


def _relinquish(conn: Connection, licence_id: int, retained: Shape) -> dict[str, Any]:
    wkb = shapely.to_wkb(retained.geometry, hex=True, include_srid=False)
    new = func.ST_SetSRID(func.ST_GeomFromWKB(func.decode(wkb, "hex")), 4326)
    outside_m2, new_m2, old_m2 = conn.execute(
        select(
            func.ST_Area(func.geography(func.ST_Difference(new, licences.c.geom))),
            func.ST_Area(func.geography(new)),
            func.ST_Area(func.geography(licences.c.geom)),
        ).where(licences.c.id == licence_id)
    ).one()
    if outside_m2 > RELINQUISH_TOLERANCE_M2:
        raise InvalidInput(
            f"the retained ground must lie within the licence: {_km2(outside_m2)} km² of it "
            "lies outside",
            field="geometry",
            where={"outside_km2": _km2(outside_m2)},
        )
    if new_m2 >= old_m2 - RELINQUISH_TOLERANCE_M2:
        raise InvalidInput(
            "a partial relinquishment must give up ground: the retained area "
            f"{_km2(new_m2)} km² is not smaller than {_km2(old_m2)} km²",
            field="geometry",
        )
    return {
        "geom": new,
        "submitted_geometry": retained.submitted,
        "submitted_crs": retained.crs,
        "transformation": retained.transformation,
        "approximate_transformation": retained.approximate,
    }


def update_attributes(
    conn: Connection,
    licence_id: int,
    changes: Mapping[str, Any],
    *,
    actor: str,
    note: str | None = None,
) -> None:
    """Change plain attributes (minerals, remarks, applied_on, published) of a licence."""
    allowed = {"minerals", "remarks", "applied_on", "published"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(
            f"{sorted(unknown)[0]!r} cannot be changed here; "
            f"changeable: {', '.join(sorted(allowed))}",
            field=sorted(unknown)[0],
        )
    lock_for_write(conn)
    row = _lock(conn, licence_id)
    if changes.get("published") is False and row["status"] != "applied":
        raise Conflict(
            f"licence {row['licence_no']} is {row['status']}: only an application can be "
            "held back from the public register",
            field="published",
        )
    real = {k: v for k, v in changes.items() if row.get(k) != v}
    if real:
        _apply_change(conn, licence_id, real, action="update", actor=actor, note=note)


# -------------------------------------------------------------- bulk transitions

#: Actions a bulk transition applies: those that change the status and nothing else,
#: so they need no argument per licence. A grant re-checks each title's ground, a
#: renewal, transfer or relinquishment takes its own dates, holder or ground: one by one.
BULK_ACTIONS = ("surrender", "cancel", "expire", "refuse")

_BULK_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS bulk_transition (
    licence_id bigint PRIMARY KEY,
    part integer NOT NULL,
    before jsonb
) ON COMMIT DROP
"""
# The event fields of a licence without its geometry (a bulk action never moves ground).
_PLAIN_STATE = "jsonb_build_object(" + ", ".join(f"'{f}', l.{f}" for f in _EVENT_FIELDS) + ")"
_BULK_BEFORE_SQL = text(
    f"UPDATE bulk_transition s SET before = {_PLAIN_STATE} "  # noqa: S608 - fixed field list
    "FROM licences l WHERE l.id = s.licence_id AND s.part = :part"
)
# One event per licence with the fields that changed, before and after, as
# :func:`_apply_change` writes them.
_BULK_EVENTS_SQL = text(
    f"""
    INSERT INTO licence_events (licence_id, version, action, actor, before, after, note)
    SELECT l.id, l.version, :action, :actor,
           coalesce((SELECT jsonb_object_agg(k, s.before -> k) FROM jsonb_object_keys(a.state) k
                     WHERE a.state -> k IS DISTINCT FROM s.before -> k), '{{}}'),
           coalesce((SELECT jsonb_object_agg(k, a.state -> k) FROM jsonb_object_keys(a.state) k
                     WHERE a.state -> k IS DISTINCT FROM s.before -> k), '{{}}'),
           :note
    FROM licences l
    JOIN bulk_transition s ON s.licence_id = l.id
    CROSS JOIN LATERAL (SELECT {_PLAIN_STATE} AS state) a
    WHERE s.part = :part
    ORDER BY l.id
    """  # noqa: S608 - fixed field list; the values are bound parameters
)


@dataclass(frozen=True)
class BulkSelection:
    """Which licences a bulk transition takes, by filter (all given filters apply)."""

    province: str | None = None
    status: str | None = None
    licence_type: str | None = None
    #: Titles whose term ended before this day (``expires_on < expired_before``).
    expired_before: date | None = None

    def empty(self) -> bool:
        return not (self.province or self.status or self.licence_type or self.expired_before)


def select_licences(conn: Connection, selection: BulkSelection) -> list[int]:
    """Ids of the licences matching ``selection`` (at least one filter), in id order."""
    if selection.empty():
        raise InvalidInput("name at least one filter: the whole register is never selected")
    q = select(licences.c.id).order_by(licences.c.id)
    if selection.province:
        q = q.where(licences.c.province_code == selection.province)
    if selection.status:
        q = q.where(licences.c.status == check_status(selection.status))
    if selection.licence_type:
        q = q.where(licences.c.licence_type == selection.licence_type)
    if selection.expired_before:
        q = q.where(licences.c.expires_on < selection.expired_before)
    return [int(i) for i in conn.scalars(q)]


def ids_of_numbers(conn: Connection, numbers: Sequence[str]) -> list[int]:
    """The ids of licences given by number, in the given order; 404 naming a missing one."""
    found = dict(
        conn.execute(
            select(licences.c.licence_no, licences.c.id).where(
                licences.c.licence_no == func.any(bindparam("nos", list(numbers), ARRAY(Text)))
            )
        ).all()
    )
    missing = [n for n in numbers if n not in found]
    if missing:
        raise NotFound(
            f"no licence numbered {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; nothing was changed",
            field="licence_no",
        )
    return [int(found[n]) for n in numbers]


def bulk_transition(
    conn: Connection,
    licence_ids: Sequence[int],
    action: str,
    *,
    actor: str,
    who: Principal | None = None,
    note: str | None = None,
    timezone: str = "Asia/Karachi",
    chunk: int = 5000,
    progress: Callable[[int], object] | None = None,
) -> dict[str, int]:
    """Apply one lifecycle action to many licences: set-based, one event per licence.

    Every licence is checked before anything is written: it exists, ``action``
    is allowed from its status (:mod:`cadastre.domain.lifecycle`), a title to
    expire has passed its expiry date (in ``timezone``), and ``who`` (when given)
    may write licences of its province. The first failure is raised naming the
    licence, and nothing is changed. Then the licences are updated, versioned and
    logged ``chunk`` at a time (a few statements per chunk, never one per licence),
    calling ``progress`` with the count done. The caller commits: all or nothing.

    Returns the count of licences changed per province code.
    """
    if action not in BULK_ACTIONS:
        next_status("applied", action)  # an unknown action: InvalidInput naming the known ones
        raise InvalidInput(
            f"{action!r} is not applied in bulk (it needs arguments or checks of its own per "
            f"licence); bulk actions: {', '.join(BULK_ACTIONS)}",
            field="action",
        )
    ids = [int(i) for i in licence_ids]
    if not ids:
        return {}
    twice = next((i for i, n in Counter(ids).items() if n > 1), None)
    if twice is not None:
        raise InvalidInput(f"licence id {twice} is listed twice; nothing was changed")
    lock_for_write(conn)
    conn.execute(text("DROP TABLE IF EXISTS bulk_transition"))
    conn.execute(text(_BULK_STAGE_DDL))
    # Each chunk is a ``part`` of the staged table: joined on it, never filtered by a
    # long array (which PostgreSQL scans linearly for every row).
    conn.execute(
        text(
            "INSERT INTO bulk_transition (licence_id, part) "
            "SELECT id, (row_number() OVER (ORDER BY id) - 1) / :chunk "
            "FROM unnest(CAST(:ids AS bigint[])) AS id"
        ),
        {"ids": ids, "chunk": chunk},
    )
    conn.execute(text("ANALYZE bulk_transition"))
    _check_bulk(conn, action, who, _today(timezone))
    new_status = next(TRANSITIONS[s][action] for s in TRANSITIONS if action in TRANSITIONS[s])
    ordered = sorted(ids)
    for number, start in enumerate(range(0, len(ordered), chunk)):
        part = ordered[start : start + chunk]
        conn.execute(_BULK_BEFORE_SQL, {"part": number})
        id_param = bindparam("ids", value=part, type_=ARRAY(BigInteger))
        conn.execute(
            update(licences)
            .where(licences.c.id == func.any(id_param))
            .values(status=new_status, version=licences.c.version + 1, changed_at=func.now())
        )
        snapshot(conn, part)
        conn.execute(
            _BULK_EVENTS_SQL, {"part": number, "action": action, "actor": actor, "note": note}
        )
        if progress is not None:
            progress(len(part))
    counts = conn.execute(
        text(
            "SELECT l.province_code, count(*) FROM licences l "
            "JOIN bulk_transition s ON s.licence_id = l.id GROUP BY 1 ORDER BY 1"
        )
    ).all()
    return {str(code): int(n) for code, n in counts}


def _check_bulk(conn: Connection, action: str, who: Principal | None, today: date) -> None:
    """Refuse the whole bulk transition at its first licence that cannot take it."""
    missing = conn.execute(
        text(
            "SELECT s.licence_id FROM bulk_transition s LEFT JOIN licences l "
            "ON l.id = s.licence_id WHERE l.id IS NULL ORDER BY 1 LIMIT 1"
        )
    ).scalar_one_or_none()
    if missing is not None:
        raise NotFound(f"no licence with id {missing}; nothing was changed", field="licence_id")
    allowed_from = [s for s, actions in TRANSITIONS.items() if action in actions]
    bad = conn.execute(
        text(
            "SELECT l.id, l.licence_no, l.status, count(*) OVER () FROM licences l "
            "JOIN bulk_transition s ON s.licence_id = l.id "
            "WHERE l.status <> ALL(CAST(:allowed AS text[])) ORDER BY l.id LIMIT 1"
        ),
        {"allowed": allowed_from},
    ).first()
    if bad is not None:
        id_, no, status, n = bad
        refused = IllegalTransition(action, status, allowed_actions(status))
        raise _naming(
            refused,
            f"licence {no} (id {id_}): {refused.message}; {n} of the listed licences "
            f"cannot take {action!r}, nothing was changed",
            licence_id=int(id_),
            licence_no=str(no),
            refused_count=int(n),
        )
    if action == "expire":
        early = conn.execute(
            text(
                "SELECT l.id, l.licence_no, l.expires_on, count(*) OVER () FROM licences l "
                "JOIN bulk_transition s ON s.licence_id = l.id "
                "WHERE l.expires_on IS NULL OR l.expires_on >= :today ORDER BY l.id LIMIT 1"
            ),
            {"today": today},
        ).first()
        if early is not None:
            id_, no, expires_on, n = early
            when = expires_on.isoformat() if expires_on else "no expiry date"
            raise Conflict(
                f"licence {no} (id {id_}) has not expired yet ({when}); {n} of the listed "
                "licences have not, nothing was changed",
                field="action",
                where={"licence_id": int(id_), "licence_no": str(no), "refused_count": int(n)},
            )
    if who is not None:
        for code, id_, no in conn.execute(
            text(
                "SELECT DISTINCT ON (l.province_code) l.province_code, l.id, l.licence_no "
                "FROM licences l JOIN bulk_transition s ON s.licence_id = l.id "
                "ORDER BY l.province_code, l.id"
            )
        ):
            try:
                require_licence_writer(who, str(code))
            except CadastreError as exc:
                message = f"licence {no} (id {id_}): {exc.message}; nothing was changed"
                raise _naming(exc, message, licence_id=int(id_), licence_no=str(no)) from None


def _naming(exc: CadastreError, message: str, **where: Any) -> CadastreError:
    """``exc`` saying which licence of a bulk transition it is about."""
    exc.message = message
    exc.args = (message,)
    exc.where = {**(exc.where or {}), **where}
    return exc


# -------------------------------------------------------------------------- reads

_PUBLIC_PROPERTIES = """json_build_object(
    'licence_no', v.licence_no, 'licence_type', v.licence_type, 'minerals', v.minerals,
    'holder', p.name, 'holder_id', v.holder_id, 'province', j.name,
    'province_code', v.province_code, 'status', v.status,
    'area_km2', round(v.area_km2::numeric, 6), 'received_at', v.received_at,
    'receipt_seq', v.receipt_seq, 'applied_on', v.applied_on, 'granted_on', v.granted_on,
    'expires_on', v.expires_on, 'version', v.version)"""


@dataclass(frozen=True)
class LicenceQuery:
    """Filters of the licence list. ``as_of`` is an instant (UTC or aware)."""

    province: str | None = None
    status: str | None = None
    licence_type: str | None = None
    mineral: str | None = None
    holder: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    as_of: datetime | None = None
    after: int | None = None
    limit: int = 100
    #: Unpublished applications the reader sees: None, a province code, or "*" (all).
    unpublished: str | None = None


def _where(q: LicenceQuery) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if q.as_of is None:
        clauses.append("v.valid_to IS NULL")
    else:
        clauses.append("v.valid_from <= :as_of AND (v.valid_to IS NULL OR v.valid_to > :as_of)")
        params["as_of"] = q.as_of
    if q.unpublished is None:
        clauses.append("v.published")
    elif q.unpublished != "*":
        clauses.append("(v.published OR v.province_code = :viewer_province)")
        params["viewer_province"] = q.unpublished
    equal = {"province_code": q.province, "status": q.status, "licence_type": q.licence_type}
    for column, value in equal.items():
        if value:
            clauses.append(f"v.{column} = :{column}")
            params[column] = value
    if q.mineral:
        clauses.append(
            "EXISTS (SELECT 1 FROM unnest(v.minerals) m WHERE lower(m) = lower(:mineral))"
        )
        params["mineral"] = q.mineral
    if q.holder:
        clauses.append(
            "v.holder_id IN (SELECT id FROM parties WHERE name ILIKE :holder ESCAPE '\\')"
        )
        escaped = q.holder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["holder"] = f"%{escaped}%"
    if q.bbox:
        clauses.append(
            "v.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326) "
            "AND ST_Intersects(v.geom, ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326))"
        )
        params |= dict(zip(("minx", "miny", "maxx", "maxy"), q.bbox, strict=True))
    return clauses, params


@dataclass(frozen=True)
class FeaturePage:
    """A page of features as ready-made GeoJSON text, with paging facts."""

    features_json: str
    number_returned: int
    number_matched: int
    last_id: int | None
    has_more: bool = False


def list_licences(conn: Connection, q: LicenceQuery) -> FeaturePage:
    """A page of licences as GeoJSON Features (built by PostGIS), keyset-paged by id."""
    clauses, params = _where(q)
    where = " AND ".join(clauses)
    page_clauses = [*clauses, "v.licence_id > :after"] if q.after is not None else clauses
    params_page = {**params, "after": q.after, "limit": q.limit}
    sql = text(
        f"""
        SELECT coalesce(string_agg(f.feature, ',' ORDER BY f.id), ''), count(*), max(f.id)
        FROM (
            SELECT v.licence_id AS id,
                   '{{"type":"Feature","id":' || v.licence_id
                   || ',"geometry":' || ST_AsGeoJSON(v.geom, 7)
                   || ',"properties":' || {_PUBLIC_PROPERTIES}::text || '}}' AS feature
            FROM licence_versions v
            JOIN parties p ON p.id = v.holder_id
            JOIN jurisdictions j ON j.code = v.province_code
            WHERE {" AND ".join(page_clauses)}
            ORDER BY v.licence_id
            LIMIT :limit
        ) f
        """  # noqa: S608 - clauses are fixed text; every value is a bound parameter
    )
    features, returned, last_id = conn.execute(sql, params_page).one()
    matched = conn.execute(
        text(f"SELECT count(*) FROM licence_versions v WHERE {where}"),  # noqa: S608
        params,
    ).scalar_one()
    has_more = last_id is not None and bool(
        conn.execute(
            text(
                f"SELECT EXISTS (SELECT 1 FROM licence_versions v "  # noqa: S608
                f"WHERE {where} AND v.licence_id > :last)"
            ),
            {**params, "last": last_id},
        ).scalar_one()
    )
    return FeaturePage(features, returned, matched, last_id, has_more)


# One licence as a GeoJSON Feature: the public register fields with the holder and
# beneficial owners (EITI 2.3, 2.5), then what each reader may see besides.
_LICENCE_FEATURE = text(
    f"""
    SELECT '{{"type":"Feature","id":' || v.licence_id
           || ',"geometry":' || ST_AsGeoJSON(v.geom, 7)
           || ',"properties":' || (
               {_PUBLIC_PROPERTIES}::jsonb || jsonb_build_object(
               'holder_details', jsonb_build_object(
                   'id', p.id, 'name', p.name, 'kind', p.kind,
                   'registration_no', p.registration_no, 'country', p.country,
                   'beneficial_owners', coalesce((
                       SELECT jsonb_agg(jsonb_build_object('name', b.name,
                           'nationality', b.nationality, 'share_pct', b.share_pct)
                           ORDER BY b.id)
                       FROM beneficial_owners b WHERE b.party_id = p.id), '[]'))
                   || CASE WHEN CAST(:scope AS text) = '*' OR v.province_code = CAST(:scope AS text)
                      THEN jsonb_build_object('contact', p.contact)
                      ELSE '{{}}' END)
               || CASE WHEN :details THEN jsonb_build_object(
                   'published', v.published,
                   'approximate_transformation', v.approximate_transformation,
                   'remarks', v.remarks,
                   'submitted', jsonb_build_object(
                       'crs', v.submitted_crs, 'geometry', v.submitted_geometry,
                       'transformation', v.transformation))
                  ELSE '{{}}' END
               )::text || '}}',
           v.province_code, v.published
    FROM licence_versions v
    JOIN parties p ON p.id = v.holder_id
    JOIN jurisdictions j ON j.code = v.province_code
    WHERE v.licence_id = :id AND v.valid_to IS NULL
    """  # noqa: S608 - fixed text; the values are bound parameters
)


def get_licence(conn: Connection, licence_id: int, who: Principal = PUBLIC) -> str:
    """One licence as a GeoJSON Feature (text), as ``who`` may see it.

    Anyone: the public register fields. Signed in: also the remarks and what was
    submitted. The province's officers and admins: also the holder's contact details,
    and unpublished applications (to anyone else they do not exist: 404).
    """
    # Contact details go with unpublished applications: to the province's officers and admins.
    row = conn.execute(
        _LICENCE_FEATURE,
        {"id": licence_id, "scope": who.unpublished_scope, "details": who.sees_details},
    ).one_or_none()
    if row is None or not (row.published or who.sees_unpublished(row.province_code)):
        raise NotFound(f"no licence with id {licence_id}")
    return str(row[0])


#: Event-state fields only signed-in accounts see.
_PRIVATE_EVENT_FIELDS = ("remarks",)


def licence_history(
    conn: Connection, licence_id: int, who: Principal = PUBLIC
) -> list[dict[str, Any]]:
    """Every event of a licence, oldest first, as ``who`` may see it: anonymous readers
    get the public fields of each state and no notes."""
    row = conn.execute(
        select(licences.c.province_code, licences.c.published).where(licences.c.id == licence_id)
    ).first()
    if row is None or not (row.published or who.sees_unpublished(row.province_code)):
        raise NotFound(f"no licence with id {licence_id}")
    rows = conn.execute(
        select(licence_events)
        .where(licence_events.c.licence_id == licence_id)
        .order_by(licence_events.c.id)
    )
    events = [dict(r._mapping) for r in rows]
    if not who.sees_details:
        for e in events:
            e["note"] = None
            for state in (e["before"], e["after"]):
                for f in _PRIVATE_EVENT_FIELDS:
                    if state:
                        state.pop(f, None)
    return events


def end_of_day(day: date, tz: str) -> datetime:
    """The last microsecond of ``day`` in time zone ``tz`` (what the register showed that day)."""
    start_next = datetime.combine(day + timedelta(days=1), datetime.min.time(), ZoneInfo(tz))
    return start_next - timedelta(microseconds=1)


__all__ = [
    "BULK_ACTIONS",
    "BulkSelection",
    "Candidate",
    "FeaturePage",
    "Holder",
    "LicenceQuery",
    "RegisterResult",
    "Shape",
    "Transition",
    "bulk_transition",
    "end_of_day",
    "get_licence",
    "ids_of_numbers",
    "licence_history",
    "list_licences",
    "place",
    "province_of",
    "register_licences",
    "register_today",
    "resolve_holders",
    "select_licences",
    "snapshot",
    "transition",
    "update_attributes",
]
