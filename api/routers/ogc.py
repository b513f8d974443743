"""OGC API - Features: Part 1 Core + GeoJSON + OpenAPI 3.0, Part 2 CRS, Part 3 CQL2 filters."""

from __future__ import annotations

import html
import json
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from api.auth import WhoDep
from api.caching import cached_extent, etag_for, not_modified, tag
from api.deps import DbDep, SettingsDep
from api.limits import check_bbox_area
from api.routers import portal
from api.schemas import FILTER_OPENAPI_PARAMETERS, errors, query_param
from cadastre.auth import Principal
from cadastre.db import cql2
from cadastre.db import features as feat
from cadastre.db.engine import Database
from cadastre.db.filters import PARAMS as FILTER_PARAMS
from cadastre.db.filters import LicenceFilter
from cadastre.errors import BadQuery

router = APIRouter(tags=["OGC API - Features"])

GEOJSON = "application/geo+json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    # OGC API - Tiles (vector tiles of every collection, WebMercatorQuad)
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]
ITEMS_PARAMS = {
    "bbox",
    "bbox-crs",
    "datetime",
    "limit",
    "offset",
    "crs",
    "filter",
    "filter-lang",
    "filter-crs",
    "properties",
    "sortby",
    "f",
    *FILTER_PARAMS,
}
ITEM_PARAMS = {"crs", "properties", "f"}


#: The items route reads its parameters itself (CQL2, CRS, the licence filters); this
#: is what it takes, for the OpenAPI document.
ITEMS_OPENAPI_PARAMETERS = [
    *FILTER_OPENAPI_PARAMETERS,
    query_param("bbox", "minx,miny,maxx,maxy (or 6 numbers, heights ignored), in bbox-crs"),
    query_param("bbox-crs", "CRS of bbox (default CRS84); see the collection's crs list"),
    query_param(
        "datetime",
        "a date, a date-time (read as a day in Asia/Karachi) or an interval "
        "a/b with .. for open ends: licences valid then",
    ),
    query_param(
        "limit",
        "features per page (default CADASTRE_PAGE_DEFAULT, at most CADASTRE_PAGE_MAX)",
        {"type": "integer", "minimum": 1},
    ),
    query_param(
        "offset", "features to skip (follow the next link)", {"type": "integer", "minimum": 0}
    ),
    query_param("crs", "CRS of the answer's coordinates; see the collection's crs list"),
    query_param("properties", "comma-separated properties to return"),
    query_param("sortby", "comma-separated properties, - for descending"),
    query_param("f", "json (default) or html", {"type": "string", "enum": ["json", "html"]}),
]
PLAIN_PARAMS = {"f"}


def _wants_html(request: Request) -> bool:
    f = request.query_params.get("f")
    if f is not None:
        if f not in ("json", "html"):
            raise BadQuery(f"f must be json or html, not {f!r}", field="f")
        return f == "html"
    accept = request.headers.get("accept", "")
    # Browsers put text/html first; `*/*` and JSON clients get JSON.
    return accept.split(",")[0].strip().startswith("text/html")


def _check_params(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise BadQuery(
            f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
            field=unknown[0],
        )


def _collection(db: Database, collection_id: str, who: Principal) -> feat.Collection:
    """A built-in collection, or a survey layer from the catalogue that ``who`` may read."""
    found = feat.builtin_collections().get(collection_id)
    if found is not None:
        return found
    with db.begin() as conn:
        return feat.get_collection(collection_id, conn, who)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _html(title: str, body: dict[str, Any]) -> HTMLResponse:
    """A plain page for browsers; every text from the data is escaped (layer names and
    attributes come from uploaded files)."""
    pretty = html.escape(json.dumps(body, indent=2, ensure_ascii=False), quote=False)
    links = "".join(
        f'<li><a href="{html.escape(str(link["href"]))}">'
        f"{html.escape(str(link.get('title') or link.get('rel', '')))}</a></li>"
        for link in body.get("links", [])
        if isinstance(link, dict) and "href" in link
    )
    heading = html.escape(title)
    return HTMLResponse(
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{heading}</title>"
        f"<h1>{heading}</h1><ul>{links}</ul><pre>{pretty}</pre></html>"
    )


def _answer(request: Request, title: str, body: dict[str, Any]) -> Response:
    if _wants_html(request):
        return _html(title, body)
    return JSONResponse(body)


@router.get("/", tags=["service"], summary="Landing page")
def landing(request: Request) -> Response:
    """Where to go from here: the OGC API landing page, with the register's own routes.

    A browser asking for the page itself (no `f`) gets the map portal; `f=html` is this
    landing page as HTML, `f=json` or a JSON client its JSON."""
    _check_params(request, PLAIN_PARAMS)
    if "f" not in request.query_params and _wants_html(request):
        portal_page = portal.page(request)
        if portal_page is not None:
            return portal_page
    base = _base(request)
    title = request.app.title
    body = {
        "title": title,
        "description": "Mining cadastre of Pakistan: licences, applications, reserved areas.",
        "links": [
            {"rel": "self", "href": f"{base}/", "type": "application/json"},
            {
                "rel": "service-desc",
                "href": f"{base}/openapi.json",
                "type": "application/vnd.oai.openapi+json;version=3.0",
            },
            {"rel": "service-doc", "href": f"{base}/docs", "type": "text/html"},
            {"rel": "alternate", "href": f"{base}/", "type": "text/html", "title": "Map portal"},
            {"rel": "conformance", "href": f"{base}/conformance", "type": "application/json"},
            {"rel": "data", "href": f"{base}/collections", "type": "application/json"},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes",
                "href": f"{base}/tileMatrixSets",
                "type": "application/json",
            },
            {"rel": "licences", "href": f"{base}/licences", "type": GEOJSON},
            {"rel": "jurisdictions", "href": f"{base}/jurisdictions"},
            {"rel": "licence-types", "href": f"{base}/licence-types"},
            {"rel": "reserved-areas", "href": f"{base}/reserved-areas", "type": GEOJSON},
            {"rel": "overlaps", "href": f"{base}/overlaps", "type": GEOJSON},
        ],
    }
    return _answer(request, title, body)


@router.get("/conformance", summary="Conformance classes")
def conformance(request: Request) -> Response:
    """The OGC conformance classes this service implements."""
    _check_params(request, PLAIN_PARAMS)
    return _answer(request, "Conformance", {"conformsTo": CONFORMANCE})


def _collection_doc(base: str, c: feat.Collection, box: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "itemType": "feature",
        "crs": list(feat.CRS_URIS),
        "storageCrs": feat.CRS84,
        "links": [
            {"href": f"{base}/collections/{c.id}", "rel": "self", "type": "application/json"},
            {"href": f"{base}/collections/{c.id}/items", "rel": "items", "type": GEOJSON},
            {
                "href": f"{base}/collections/{c.id}/queryables",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "type": "application/schema+json",
            },
            {
                "href": f"{base}/collections/{c.id}/tiles",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                "type": "application/json",
            },
        ],
    }
    if box is not None:
        doc["extent"] = {"spatial": {"bbox": [list(box)], "crs": feat.CRS84}}
    return doc


@router.get("/collections", summary="The feature collections")
def list_collections(request: Request, db: DbDep, who: WhoDep) -> Response:
    """Every collection with its extent and links."""
    _check_params(request, PLAIN_PARAMS)
    base = _base(request)
    with db.begin() as conn:
        gen = db.map_generation(conn)
        etag = etag_for(request, gen)
        held = not_modified(request, etag)
        if held is not None:
            return held
        docs = [
            _collection_doc(base, c, cached_extent(request, conn, c, gen))
            for c in feat.collections(conn, who).values()
        ]
    body = {
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
        "collections": docs,
    }
    return tag(_answer(request, "Collections", body), etag)


@router.get("/collections/{collectionId}", summary="A feature collection")
def describe_collection(collectionId: str, request: Request, db: DbDep, who: WhoDep) -> Response:
    """One collection: title, extent, CRSs and links."""
    _check_params(request, PLAIN_PARAMS)
    with db.begin() as conn:
        gen = db.map_generation(conn)
        c = feat.get_collection(collectionId, conn, who)
        etag = etag_for(request, gen)
        held = not_modified(request, etag)
        if held is not None:
            return held
        doc = _collection_doc(_base(request), c, cached_extent(request, conn, c, gen))
    return tag(_answer(request, c.title, doc), etag)


@router.get("/collections/{collectionId}/queryables", summary="Queryable properties")
def queryables(collectionId: str, request: Request, db: DbDep, who: WhoDep) -> Response:
    """JSON Schema of the properties a CQL2 filter may use."""
    _check_params(request, PLAIN_PARAMS)
    c = _collection(db, collectionId, who)
    body = feat.queryables_schema(c, _base(request))
    if _wants_html(request):
        return _html(f"{c.title}: queryables", body)
    return JSONResponse(body, media_type="application/schema+json")


def _crs(value: str | None, field: str) -> tuple[int, bool]:
    if value is None:
        return 4326, False
    key = value.strip()
    if key.startswith("[") and key.endswith("]"):  # safe CURIE, e.g. [EPSG:4326]
        key = key[1:-1]
    if key.upper().startswith("EPSG:"):
        key = f"http://www.opengis.net/def/crs/EPSG/0/{key[5:]}"
    if key.upper() in ("OGC:CRS84", "CRS84"):
        key = feat.CRS84
    if key not in feat.CRS_URIS:
        raise BadQuery(
            f"{field} {value!r} is not supported; use one of {', '.join(feat.CRS_URIS)}",
            field=field,
        )
    return feat.CRS_URIS[key]


def _bbox(value: str) -> tuple[float, float, float, float]:
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError:
        raise BadQuery(f"bbox must be 4 numbers, got {value!r}", field="bbox") from None
    if len(numbers) == 6:  # 3D bbox: drop the heights
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or any(n != n or abs(n) == float("inf") for n in numbers):
        raise BadQuery("bbox must be 4 finite numbers minx,miny,maxx,maxy", field="bbox")
    minx, miny, maxx, maxy = numbers
    if minx > maxx or miny > maxy:
        raise BadQuery("bbox corners are out of order: expected minx,miny,maxx,maxy", field="bbox")
    return minx, miny, maxx, maxy


def _date(part: str, zone: ZoneInfo) -> date | None:
    """A calendar date of the register; a date-time is read in the register's time zone
    (licence dates are days in Pakistan: 2024-05-31T23:30Z is 1 June there)."""
    if part in ("", ".."):
        return None
    try:
        if "T" in part.upper():
            instant = datetime.fromisoformat(part.replace("Z", "+00:00").replace("z", "+00:00"))
            if instant.tzinfo is not None:
                instant = instant.astimezone(zone)
            return instant.date()
        return date.fromisoformat(part)
    except ValueError:
        raise BadQuery(
            f"datetime must be an RFC 3339 date or date-time, or an interval a/b; got {part!r}",
            field="datetime",
        ) from None


def _interval(value: str, zone: ZoneInfo) -> tuple[date | None, date | None]:
    if "/" in value:
        start, _, end = value.partition("/")
        first, last = _date(start, zone), _date(end, zone)
        if first is not None and last is not None and first > last:
            raise BadQuery(f"datetime interval {value!r} ends before it starts", field="datetime")
        return first, last
    day = _date(value, zone)
    return day, day


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(f"{name} must be a whole number, got {raw!r}", field=name) from None
    if not lo <= value <= hi:
        raise BadQuery(f"{name} must be between {lo} and {hi}, got {value}", field=name)
    return value


def _names(c: feat.Collection, value: str, field: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    for n in names:
        bare = n.lstrip("+-")
        if bare not in c.properties:
            raise BadQuery(
                f"{field}: unknown property {bare!r}; properties: {', '.join(c.properties)}",
                field=field,
            )
    return names


def _query(request: Request, c: feat.Collection, settings: Any, who: Principal) -> feat.ItemsQuery:
    p = request.query_params
    crs_srid, crs_flip = _crs(p.get("crs"), "crs")
    bbox_srid, bbox_flip = _crs(p.get("bbox-crs"), "bbox-crs")
    if "bbox-crs" in p and "bbox" not in p:
        raise BadQuery("bbox-crs is given without bbox", field="bbox-crs")
    flt = None
    cql2.check_companions(p)
    if "filter" in p:
        tree = cql2.parse(p["filter"], p.get("filter-lang", "cql2-text"))
        columns = {name: c.column(name) for name in c.queryables}
        flt = cql2.to_sql(tree, columns, c.column("geom"), dates=c.dates, kinds=c.queryables)
    sortby: list[tuple[str, bool]] = []
    if "sortby" in p:
        for name in _names(c, p["sortby"], "sortby"):
            bare = name.lstrip("+-")
            if bare not in c.sortable:
                raise BadQuery(f"sortby: {bare!r} is not sortable", field="sortby")
            sortby.append((bare, name.startswith("-")))
    box = _bbox(p["bbox"]) if "bbox" in p else None
    if box is not None:
        check_bbox_area(box, settings.max_bbox_deg2, srid=bbox_srid)
    return feat.ItemsQuery(
        bbox=box,
        bbox_srid=bbox_srid,
        bbox_flip=bbox_flip,
        interval=_interval(p["datetime"], ZoneInfo(settings.register_timezone))
        if "datetime" in p
        else None,
        filter=flt,
        plain=LicenceFilter.from_params(p, request.app.state.rules.types),
        properties=tuple(_names(c, p["properties"], "properties")) if "properties" in p else None,
        sortby=tuple(sortby),
        limit=_int(request, "limit", settings.page_default, 1, settings.page_max),
        offset=_int(request, "offset", 0, 0, 10_000_000),
        crs_srid=crs_srid,
        crs_flip=crs_flip,
        unpublished=who.unpublished_scope,
    )


def _crs_header(srid: int, flip: bool) -> str:
    for uri, (s, f) in feat.CRS_URIS.items():
        if s == srid and f == flip:
            return f"<{uri}>"
    return f"<{feat.CRS84}>"


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a collection",
    responses={200: {"content": {GEOJSON: {}}}, **errors(400, 404)},
    openapi_extra={"parameters": ITEMS_OPENAPI_PARAMETERS},
)
def get_items(
    collectionId: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    who: WhoDep,
) -> Response:
    """Features as GeoJSON: bbox, datetime, CQL2 filter, properties, sortby, crs, paging;
    for licences also `status`, `type`, `province` and `mineral` (comma-separated lists).
    Licence applications held back from the public register are shown only to their
    province's officers and admins."""
    _check_params(request, ITEMS_PARAMS)
    c = _collection(db, collectionId, who)
    q = _query(request, c, settings, who)
    with db.begin() as conn:
        etag = etag_for(request, db.map_generation(conn))
        held = not_modified(request, etag)
        if held is not None:
            return held
        page = feat.items(conn, c, q)
    base = str(request.url.remove_query_params(["offset", "f"]))
    sep = "&" if "?" in base else "?"
    links = [
        {"href": str(request.url), "rel": "self", "type": GEOJSON},
        {"href": f"{base}{sep}f=html", "rel": "alternate", "type": "text/html"},
    ]
    if page.has_more:
        links.append(
            {
                "href": f"{base}{sep}{urlencode({'offset': q.offset + q.limit})}",
                "rel": "next",
                "type": GEOJSON,
            }
        )
    if q.offset > 0:
        links.append(
            {
                "href": f"{base}{sep}{urlencode({'offset': max(0, q.offset - q.limit)})}",
                "rel": "prev",
                "type": GEOJSON,
            }
        )
    head: dict[str, Any] = {
        "type": "FeatureCollection",
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "numberReturned": page.number_returned,
    }
    if page.number_matched is not None:
        head["numberMatched"] = page.number_matched
    head["links"] = links
    if _wants_html(request):
        body = {**head, "features": json.loads(f"[{page.features_json}]")}
        return tag(_html(f"{c.title}: features", body), etag)
    text = json.dumps(head)
    return tag(
        Response(
            f'{text[:-1]},"features":[{page.features_json}]}}',
            media_type=GEOJSON,
            headers={"Content-Crs": _crs_header(q.crs_srid, q.crs_flip)},
        ),
        etag,
    )


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    summary="One feature",
    responses={200: {"content": {GEOJSON: {}}}},
)
def get_item(
    collectionId: str,
    featureId: str,
    request: Request,
    db: DbDep,
    who: WhoDep,
) -> Response:
    """One feature as GeoJSON, in the requested CRS."""
    _check_params(request, ITEM_PARAMS)
    c = _collection(db, collectionId, who)
    srid, flip = _crs(request.query_params.get("crs"), "crs")
    props = request.query_params.get("properties")
    q = feat.ItemsQuery(
        crs_srid=srid,
        crs_flip=flip,
        properties=tuple(_names(c, props, "properties")) if props else None,
        unpublished=who.unpublished_scope,
    )
    with db.begin() as conn:
        etag = etag_for(request, db.map_generation(conn))
        held = not_modified(request, etag)
        if held is not None:
            return held
        feature = json.loads(feat.item(conn, c, featureId, q))
    base = _base(request)
    feature["links"] = [
        {"href": str(request.url), "rel": "self", "type": GEOJSON},
        {"href": f"{base}/collections/{c.id}", "rel": "collection", "type": "application/json"},
    ]
    if _wants_html(request):
        return tag(_html(f"{c.title}: {featureId}", feature), etag)
    return tag(
        Response(
            json.dumps(feature),
            media_type=GEOJSON,
            headers={"Content-Crs": _crs_header(srid, flip)},
        ),
        etag,
    )
