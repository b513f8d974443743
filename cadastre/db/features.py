"""Feature collections for OGC API - Features: what each one serves and how it is queried.

Each collection is a fixed SQL selectable with an ``id``, a ``geom`` in
EPSG:4326 and its public properties. Queries are built with SQLAlchemy Core;
the finished GeoJSON text of a page is produced by PostGIS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    and_,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.types import BigInteger, Boolean, Date, Float, Numeric, Text

from cadastre.auth import PUBLIC, Principal
from cadastre.db.filters import LicenceFilter
from cadastre.db.tables import (
    jurisdictions,
    licence_versions,
    parties,
    reserved_areas,
    survey_features,
    survey_layers,
)
from cadastre.errors import BadQuery, NotFound
from cadastre.survey.access import visible

#: Output CRSs: identifier -> (SRID, axis order flipped to lat/lon?)
CRS_URIS: dict[str, tuple[int, bool]] = {
    "http://www.opengis.net/def/crs/OGC/1.3/CRS84": (4326, False),
    "http://www.opengis.net/def/crs/EPSG/0/4326": (4326, True),
    "http://www.opengis.net/def/crs/EPSG/0/3857": (3857, False),
    "http://www.opengis.net/def/crs/EPSG/0/32641": (32641, False),
    "http://www.opengis.net/def/crs/EPSG/0/32642": (32642, False),
    "http://www.opengis.net/def/crs/EPSG/0/32643": (32643, False),
}
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
COUNT_CAP = 10_000


@dataclass(frozen=True)
class Collection:
    """A feature collection: its source and what may be asked of it."""

    id: str
    title: str
    description: str
    source: FromClause
    queryables: dict[str, str]  # name -> JSON schema type ("string", "number", "date")
    temporal: tuple[str, str | None] | None = None  # start and end date properties
    sortable: tuple[str, ...] = ()
    extra_links: list[dict[str, str]] = field(default_factory=list)

    @property
    def properties(self) -> list[str]:
        return [c.name for c in self.source.c if c.name not in ("id", "geom") and c.name[0] != "_"]

    def column(self, name: str) -> Any:
        return self.source.c[name]

    @property
    def dates(self) -> frozenset[str]:
        return frozenset(n for n, t in self.queryables.items() if t == "date")


def _licences() -> FromClause:
    v = licence_versions
    return (
        select(
            v.c.licence_id.label("id"),
            v.c.licence_no,
            v.c.licence_type,
            func.array_to_string(v.c.minerals, "; ").label("minerals"),
            parties.c.name.label("holder"),
            jurisdictions.c.name.label("province"),
            v.c.province_code,
            v.c.status,
            func.round(cast(v.c.area_km2, Numeric), 6).label("area_km2"),
            func.date(func.timezone("Asia/Karachi", v.c.received_at)).label("received_on"),
            v.c.applied_on,
            v.c.granted_on,
            v.c.expires_on,
            v.c.minerals.label("_minerals"),  # for the mineral filter; not a property
            v.c.published.label("_published"),  # who may see it; not a property
            v.c.geom,
        )
        .join(parties, parties.c.id == v.c.holder_id)
        .join(jurisdictions, jurisdictions.c.code == v.c.province_code)
        .where(v.c.valid_to.is_(None))
        .subquery("licences")
    )


def _jurisdictions() -> FromClause:
    j = jurisdictions
    return select(
        j.c.code.label("id"),
        j.c.name,
        j.c.kind,
        func.round(cast(j.c.area_km2, Numeric), 3).label("area_km2"),
        j.c.source,
        j.c.geom,
    ).subquery("jurisdictions")


def _reserved() -> FromClause:
    r = reserved_areas
    return select(
        r.c.id,
        r.c.name,
        r.c.kind,
        r.c.province_code,
        func.round(cast(r.c.area_km2, Numeric), 6).label("area_km2"),
        r.c.source,
        r.c.designated_on,
        r.c.remarks,
        r.c.geom,
    ).subquery("reserved_areas")


_LICENCE_Q = {
    "licence_no": "string",
    "licence_type": "string",
    "minerals": "string",
    "holder": "string",
    "province": "string",
    "province_code": "string",
    "status": "string",
    "area_km2": "number",
    "received_on": "date",
    "applied_on": "date",
    "granted_on": "date",
    "expires_on": "date",
}


def builtin_collections() -> dict[str, Collection]:
    """The register's own collections, by id."""
    return {
        c.id: c
        for c in (
            Collection(
                id="licences",
                title="Mineral licences (public register)",
                description="Applications and titles with the EITI public-register fields: "
                "number, type, commodities, holder, province, status, dates, area.",
                source=_licences(),
                queryables=_LICENCE_Q,
                temporal=("granted_on", "expires_on"),
                sortable=tuple(_LICENCE_Q),
            ),
            Collection(
                id="jurisdictions",
                title="Provinces and territories",
                description="Pakistan's provinces and territories (geoBoundaries ADM1).",
                source=_jurisdictions(),
                queryables={"name": "string", "kind": "string", "area_km2": "number"},
                sortable=("name", "area_km2"),
            ),
            Collection(
                id="reserved_areas",
                title="Reserved and closed areas",
                description="Protected, forest, strategic, religious and auction-reserved "
                "ground where no licence may be granted.",
                source=_reserved(),
                queryables={
                    "name": "string",
                    "kind": "string",
                    "province_code": "string",
                    "area_km2": "number",
                    "designated_on": "date",
                },
                sortable=("name", "kind", "area_km2", "designated_on"),
            ),
        )
    }


#: Attribute schema type -> (SQL type of the column, queryable type).
_SURVEY_TYPES: dict[str, tuple[Any, str]] = {
    "string": (Text, "string"),
    "integer": (BigInteger, "integer"),
    "number": (Float, "number"),
    "boolean": (Boolean, "boolean"),
    "date": (Date, "date"),
    "datetime": (Text, "string"),
    "array": (Text, "string"),
}


def survey_collection(
    slug: str, layer_id: int, name: str, description: str | None, attributes: list[dict[str, str]]
) -> Collection:
    """A vector survey layer as a collection: its jsonb properties as typed columns.

    Attribute names come from users' files: they are only ever column labels
    and jsonb keys (bound values), which SQLAlchemy quotes, never SQL text.
    """
    f = survey_features
    columns: list[Any] = [f.c.fid.label("id")]
    queryables: dict[str, str] = {}
    for attr in attributes:
        sql_type, kind = _SURVEY_TYPES.get(attr["type"], (Text, "string"))
        value = f.c.properties[attr["name"]].astext
        columns.append((value if sql_type is Text else cast(value, sql_type)).label(attr["name"]))
        queryables[attr["name"]] = kind
    columns.append(f.c.geom)
    source = select(*columns).where(f.c.layer_id == layer_id).subquery(slug)
    return Collection(
        id=slug,
        title=name,
        description=description or f"Survey layer {name}",
        source=source,
        queryables=queryables,
        sortable=tuple(queryables),
    )


def survey_collections(
    conn: Connection, slug: str | None = None, who: Principal = PUBLIC
) -> dict[str, Collection]:
    """The vector survey layers of the catalogue that ``who`` may read, as collections
    (one, given ``slug``)."""
    s = survey_layers
    query = (
        select(s.c.slug, s.c.id, s.c.name, s.c.description, s.c.attributes)
        .where(s.c.storage == "vector", visible(who))
        .order_by(s.c.slug)
    )
    if slug is not None:
        query = query.where(s.c.slug == slug)
    return {
        r.slug: survey_collection(r.slug, int(r.id), r.name, r.description, list(r.attributes))
        for r in conn.execute(query)
    }


def collections(conn: Connection | None = None, who: Principal = PUBLIC) -> dict[str, Collection]:
    """The collections this service publishes, by id: the register's own, then,
    given a connection, every vector survey layer in the catalogue that ``who`` may read."""
    found = builtin_collections()
    if conn is not None:
        found.update(survey_collections(conn, who=who))
    return found


def get_collection(
    collection_id: str, conn: Connection | None = None, who: Principal = PUBLIC
) -> Collection:
    """One collection; survey layers are looked up in the catalogue (needs ``conn``), and
    one that ``who`` may not read is not found."""
    found = builtin_collections().get(collection_id)
    if found is None and conn is not None:
        found = survey_collections(conn, collection_id, who).get(collection_id)
    if found is None:
        raise NotFound(f"no collection {collection_id!r}", field="collectionId")
    return found


@dataclass(frozen=True)
class ItemsQuery:
    bbox: tuple[float, float, float, float] | None = None
    bbox_srid: int = 4326
    bbox_flip: bool = False
    interval: tuple[date | None, date | None] | None = None
    filter: ColumnElement[bool] | None = None
    plain: LicenceFilter = field(default_factory=LicenceFilter)
    properties: tuple[str, ...] | None = None
    sortby: tuple[tuple[str, bool], ...] = ()  # (property, descending)
    limit: int = 10
    offset: int = 0
    crs_srid: int = 4326
    crs_flip: bool = False
    #: Unpublished applications the reader sees: None, a province code, or "*" (all).
    unpublished: str | None = None


@dataclass(frozen=True)
class ItemsPage:
    features_json: str
    number_returned: int
    number_matched: int | None
    has_more: bool


def licences_visible(c: Collection, unpublished: str | None) -> list[ColumnElement[bool]]:
    """What of collection ``c`` a reader may see: of the licences, the published ones and
    the unpublished applications in ``unpublished`` (None, a province code or "*")."""
    if c.id != "licences" or unpublished == "*":
        return []
    published = c.column("_published")
    if unpublished is None:
        return [published]
    return [or_(published, c.column("province_code") == unpublished)]


def _conditions(c: Collection, q: ItemsQuery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = licences_visible(c, q.unpublished)
    geom = c.column("geom")
    if q.bbox is not None:
        minx, miny, maxx, maxy = q.bbox
        if q.bbox_flip:
            minx, miny, maxx, maxy = miny, minx, maxy, maxx
        env = func.ST_MakeEnvelope(minx, miny, maxx, maxy, q.bbox_srid)
        if q.bbox_srid != 4326:
            env = func.ST_Transform(env, 4326)
        conds.append(and_(geom.op("&&")(env), func.ST_Intersects(geom, env)))
    if q.interval is not None:
        if c.temporal is None:
            raise BadQuery(f"collection {c.id!r} has no temporal property", field="datetime")
        start_name, end_name = c.temporal
        start_col = c.column(start_name)
        end_col = c.column(end_name) if end_name else start_col
        lo, hi = q.interval
        if hi is not None:
            conds.append(start_col <= hi)
        if lo is not None:
            conds.append(or_(end_col.is_(None), end_col >= lo))
        conds.append(start_col.is_not(None))
    if q.filter is not None:
        conds.append(q.filter)
    if q.plain:
        if c.id != "licences":
            raise BadQuery(
                "status, type, province and mineral filter the licences only", field="status"
            )
        conds.extend(
            q.plain.conditions(
                c.column("status"),
                c.column("licence_type"),
                c.column("province_code"),
                c.column("_minerals"),
            )
        )
    return conds


def _geometry_json(c: Collection, q: ItemsQuery) -> Any:
    geom = c.column("geom")
    if q.crs_srid != 4326:
        geom = func.ST_Transform(geom, q.crs_srid)
    if q.crs_flip:
        geom = func.ST_FlipCoordinates(geom)
    digits = 7 if q.crs_srid == 4326 else 3
    return func.ST_AsGeoJSON(geom, digits)


def _feature_text(c: Collection, q: ItemsQuery) -> Any:
    names = q.properties if q.properties is not None else tuple(c.properties)
    pairs: list[Any] = []
    for name in names:
        pairs.extend([literal(name, Text), c.column(name)])
    props = func.json_build_object(*pairs) if pairs else text("'{}'::json")
    return (
        literal_column('\'{"type":"Feature","id":\'')
        + func.to_json(c.column("id")).cast(Text)
        + literal_column("',\"geometry\":'")
        + func.coalesce(_geometry_json(c, q), "null")
        + literal_column("',\"properties\":'")
        + cast(props, Text)
        + literal_column("'}'")
    )


def items(conn: Connection, c: Collection, q: ItemsQuery) -> ItemsPage:
    """A page of a collection's features as GeoJSON text, and whether more follow."""
    conds = _conditions(c, q)
    order = [
        (c.column(name).desc() if desc else c.column(name).asc()).nulls_last()
        for name, desc in q.sortby
    ] + [c.column("id").asc()]
    page: Select[Any] = (
        select(_feature_text(c, q).label("f"))
        .select_from(c.source)
        .where(*conds)
        .order_by(*order)
        .limit(q.limit + 1)
        .offset(q.offset)
    )
    rows = list(conn.execute(page).scalars())
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    # Exact when present: the last page knows it; otherwise counted only up to a cap,
    # so no page of a large collection pays for a full count.
    matched = q.offset + len(rows)
    counted = has_more or (q.offset > 0 and not rows)  # past the end: offset says nothing
    if counted:
        capped: Select[Any] = (
            select(literal_column("1")).select_from(c.source).where(*conds).limit(COUNT_CAP + 1)
        )
        matched = conn.execute(select(func.count()).select_from(capped.subquery())).scalar_one()
    return ItemsPage(
        features_json=",".join(rows),
        number_returned=len(rows),
        number_matched=None if counted and matched > COUNT_CAP else matched,
        has_more=has_more,
    )


def item(conn: Connection, c: Collection, feature_id: str, q: ItemsQuery) -> str:
    """One feature as GeoJSON text."""
    id_col = c.column("id")
    key: Any = feature_id
    if not isinstance(id_col.type, Text):
        try:
            key = int(feature_id)
        except ValueError:
            raise NotFound(f"no feature {feature_id!r} in {c.id}", field="featureId") from None
    found = conn.execute(
        select(_feature_text(c, q))
        .select_from(c.source)
        .where(id_col == key, *licences_visible(c, q.unpublished))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no feature {feature_id!r} in {c.id}", field="featureId")
    return str(found)


def extent(conn: Connection, c: Collection) -> tuple[float, float, float, float] | None:
    """Bounding box of the collection in WGS 84 lon/lat (of what the public sees)."""
    box = conn.execute(
        select(func.ST_Extent(c.column("geom")))
        .select_from(c.source)
        .where(*licences_visible(c, None))
    ).scalar()
    if box is None:
        return None
    inner = str(box)[4:-1].replace(",", " ").split()
    minx, miny, maxx, maxy = (float(v) for v in inner)
    return minx, miny, maxx, maxy


def queryables_schema(c: Collection, base_url: str) -> dict[str, Any]:
    """JSON Schema of the queryable properties (OGC API - Features Part 3)."""
    kinds: Mapping[str, dict[str, str]] = {
        "string": {"type": "string"},
        "number": {"type": "number"},
        "integer": {"type": "integer"},
        "boolean": {"type": "boolean"},
        "date": {"type": "string", "format": "date"},
    }
    props: dict[str, Any] = {
        "geometry": {"format": "geometry-any", "x-ogc-role": "primary-geometry"}
    }
    for name, kind in c.queryables.items():
        props[name] = {"title": name, **kinds[kind]}
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": f"{base_url}/collections/{c.id}/queryables",
        "type": "object",
        "title": c.title,
        "properties": props,
        "additionalProperties": False,
    }
