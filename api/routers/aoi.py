"""The area-of-interest report: ``POST /aoi/report``."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from api.auth import WhoDep
from api.deps import DbDep, RulesDep, SettingsDep, strict_query
from api.routers.licences import CrsParam
from api.schemas import GEOMETRY_DOC, errors
from cadastre.db import aoi
from cadastre.domain.geometry import ShapeLimits, intake
from cadastre.errors import BadQuery, InvalidInput, RasterUnavailable
from cadastre.survey import raster

router = APIRouter(tags=["area of interest"], dependencies=[Depends(strict_query)])

GEOJSON = "application/geo+json"
FORMATS = ("json", "geojson", "html")

AOI_EXAMPLE = {
    "type": "Polygon",
    "coordinates": [[[61.9, 28.9], [62.4, 28.9], [62.4, 29.3], [61.9, 29.3], [61.9, 28.9]]],
}

#: Fill colours by licence status (the portal's legend uses the same).
STATUS_COLOURS = {
    "granted": "#c0392b",
    "applied": "#e67e22",
    "expired": "#7f8c8d",
    "surrendered": "#95a5a6",
    "cancelled": "#34495e",
    "refused": "#bdc3c7",
}
FREE_COLOUR = "#27ae60"


def _area(body: Any, crs: str | None, limits: ShapeLimits) -> Any:
    """The area of interest as a MultiPolygon in EPSG:4326, from a geometry or a bbox."""
    if isinstance(body, dict) and "bbox" in body and "type" not in body:
        box = body["bbox"]
        extra = sorted(set(body) - {"bbox"})
        if extra:
            raise InvalidInput(f"unexpected member {extra[0]!r} beside bbox", field=extra[0])
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, int | float) and math.isfinite(v) for v in box)
        ):
            raise InvalidInput("bbox is four finite numbers: minx, miny, maxx, maxy", field="bbox")
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x0 < x1 and y0 < y1):
            raise InvalidInput("bbox needs minx < maxx and miny < maxy", field="bbox")
        body = {
            "type": "Polygon",
            "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]],
        }
    return intake(body, crs, limits=limits).geometry


def _format(request: Request, f: str | None) -> str:
    if f is not None:
        if f not in FORMATS:
            raise BadQuery(f"f must be one of {', '.join(FORMATS)}, not {f!r}", field="f")
        return f
    first = request.headers.get("accept", "").split(",")[0].strip()
    if first.startswith("text/html"):
        return "html"
    if first.startswith(GEOJSON):
        return "geojson"
    return "json"


@router.post(
    "/aoi/report",
    summary="What is in this area: licences, free ground, survey layers",
    responses={
        **errors(400, 422),
        200: {
            "content": {"application/json": {}, GEOJSON: {}, "text/html": {}},
            "description": "JSON by default; GeoJSON of the geometric parts with "
            "`f=geojson` or `Accept: application/geo+json`; a printable HTML page with a "
            "map with `f=html` or a browser's `Accept`.",
        },
    },
)
def aoi_report(
    request: Request,
    db: DbDep,
    rules: RulesDep,
    settings: SettingsDep,
    who: WhoDep,
    body: Annotated[
        dict[str, Any] | str,
        Body(
            description="The area of interest: a GeoJSON Polygon or MultiPolygon (geometry or "
            'Feature), WKT, or `{"bbox": [minx, miny, maxx, maxy]}`; coordinates in `crs`. '
            + GEOMETRY_DOC,
            examples=[AOI_EXAMPLE, {"bbox": [61.9, 28.9, 62.4, 29.3]}],
        ),
    ],
    crs: CrsParam = None,
    f: Annotated[
        str | None, Query(description="json (default), geojson or html", max_length=10)
    ] = None,
) -> Response:
    """One document for an area of interest: its geodesic area; every licence and
    application in it with the overlapping area and its share; the free ground (the area
    minus live exclusive titles, pending exclusive applications and reserved areas) as
    geometry and area; per vector survey layer a summary (features counted, measured and
    grouped, e.g. occurrences by commodity, geology units by area share); per raster
    survey layer the statistics of the pixels it covers. Survey layers not marked public
    are reported to signed-in callers only."""
    fmt = _format(request, f)
    geometry = _area(body, crs, settings.shape_limits)
    with db.begin() as conn:
        rep = aoi.report(
            conn,
            geometry,
            rules=rules,
            timezone=settings.register_timezone,
            tolerance_m2=settings.overlap_tolerance_m2,
            raster_stats=_raster_stats(settings.rasters),
            who=who,
        )
    if fmt == "geojson":
        return JSONResponse(aoi.geojson(rep), media_type=GEOJSON)
    if fmt == "html":
        return HTMLResponse(page(rep))
    return JSONResponse(rep.to_dict())


def _raster_stats(folder: Path) -> aoi.RasterStats:
    """Statistics of a catalogued raster over the area (the pixels whose centres it holds,
    nodata excluded: the rule of ``POST /rasters/{slug}/statistics``)."""

    def stats(row: Any, geometry: Any) -> dict[str, Any]:
        info = dict(row["raster"])
        lay = raster.RasterLayer(
            slug=row["slug"], name=row["name"], path=folder / info["path"], info=info
        )
        try:
            found = raster.polygon_statistics(lay, json.loads(shapely.to_geojson(geometry)))
        except (BadQuery, RasterUnavailable) as exc:  # outside it, too large, file gone
            return {"units": info.get("units"), "statistics": None, "note": exc.message}
        bands = found["bands"]
        return {
            "units": found["units"],
            "pixels_covered": found["pixels_covered"],
            "statistics": bands[0] if len(bands) == 1 else None,
            "bands": bands,
        }

    return stats


# ---------------------------------------------------------------------- the page


def _svg(rep: aoi.AoiReport, width: int = 640) -> str:
    """A map of the area: licences by status, the free ground, the area's outline."""
    outline = shapely.geometry.shape(rep.aoi_geometry)
    x0, y0, x1, y1 = outline.bounds
    k = math.cos(math.radians((y0 + y1) / 2))  # equal distances across and along
    w = max((x1 - x0) * k, 1e-9)
    h = max(y1 - y0, 1e-9)
    scale = (width - 20) / w
    height = int(h * scale) + 20

    def path(geom: dict[str, Any]) -> str:
        shape = shapely.geometry.shape(geom)
        polys = getattr(shape, "geoms", [shape])
        d = []
        for poly in polys:
            for ring in (poly.exterior, *poly.interiors):
                pts = " L".join(
                    f"{10 + (x - x0) * k * scale:.1f},{10 + (y1 - y) * scale:.1f}"
                    for x, y in ring.coords
                )
                d.append(f"M{pts}Z")
        return " ".join(d)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="map of the area">',
        f'<rect width="{width}" height="{height}" fill="#f8f8f4"/>',
    ]
    if rep.free_geometry is not None:
        parts.append(
            f'<path d="{path(rep.free_geometry)}" fill="{FREE_COLOUR}" fill-opacity="0.35" '
            'fill-rule="evenodd"><title>free ground</title></path>'
        )
    for lic in sorted(rep.licences, key=lambda item: -item["overlap_km2"]):
        colour = STATUS_COLOURS.get(lic["status"], "#555")
        label = html.escape(f"{lic['licence_no']} ({lic['status']}, {lic['holder']})")
        parts.append(
            f'<path d="{path(rep.pieces[lic["id"]])}" fill="{colour}" fill-opacity="0.55" '
            f'stroke="{colour}" stroke-width="1" fill-rule="evenodd"><title>{label}</title></path>'
        )
    parts.append(
        f'<path d="{path(rep.aoi_geometry)}" fill="none" stroke="#111" stroke-width="2" '
        'stroke-dasharray="6 3" fill-rule="evenodd"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def page(rep: aoi.AoiReport) -> str:
    """The report as a printable HTML page with its map."""
    d = rep.to_dict()
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(lic['licence_no'])}</td><td>{esc(lic['licence_type'])}</td>"
        f"<td>{esc(lic['status'])}</td><td>{esc(lic['holder'])}</td>"
        f"<td>{esc(', '.join(lic['minerals']))}</td>"
        f"<td class=n>{lic['overlap_km2']:.3f}</td><td class=n>{lic['share_of_aoi_pct']:.2f}</td>"
        f"<td class=n>{lic['share_of_licence_pct']:.2f}</td></tr>"
        for lic in d["licences"]
    )
    reserved = "".join(
        f"<tr><td>{esc(r['name'])}</td><td>{esc(r['kind'])}</td>"
        f"<td class=n>{r['overlap_km2']:.3f}</td><td class=n>{r['share_of_aoi_pct']:.2f}</td></tr>"
        for r in d["reserved_areas"]
    )
    layers = []
    for layer in d["survey"]["vector"]:
        label = esc(layer["name"]) + (" <strong>(SYNTHETIC)</strong>" if layer["synthetic"] else "")
        groups = ", ".join(
            esc(str(g["value"]))
            + ": "
            + (
                f"{g['share_pct']:.1f} %"
                if "share_pct" in g
                else f"{g['length_km']:.1f} km"
                if "length_km" in g
                else str(g["count"])
            )
            for g in layer["groups"][:12]
        )
        layers.append(
            f"<li>{label}: {layer['features']} features"
            + (f" — by {esc(layer['grouped_by'])}: {groups}" if groups else "")
            + f"<br><small>Source: {esc(layer['source'])}; licence: {esc(layer['licence'])}"
            "</small></li>"
        )
    for layer in d["survey"]["raster"]:
        label = esc(layer["name"]) + (" <strong>(SYNTHETIC)</strong>" if layer["synthetic"] else "")
        stats = layer.get("statistics") or {}
        summary = ", ".join(
            f"{k} {stats[k]:.4g}"
            for k in ("count", "min", "max", "mean", "std")
            if stats.get(k) is not None
        )
        units = f" ({esc(layer['units'])})" if layer.get("units") else ""
        layers.append(
            f"<li>{label}{units}: {esc(summary) or esc(layer.get('note') or 'no valid pixels')}"
            f"<br><small>Source: {esc(layer['source'])}; licence: {esc(layer['licence'])}"
            "</small></li>"
        )
    legend = "".join(
        f'<span><i style="background:{c}"></i>{esc(s)}</span>'
        for s, c in STATUS_COLOURS.items()
        if any(lic["status"] == s for lic in d["licences"])
    )
    free = d["free_ground"]
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>Area of interest report</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:60em}}
table{{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:.2em .4em;text-align:left}} td.n{{text-align:right}}
.legend span{{margin-right:1em}} .legend i{{display:inline-block;width:1em;height:1em;
vertical-align:middle;margin-right:.3em;opacity:.7}}
@media print{{body{{margin:0}} a{{color:inherit}}}}
</style></head><body>
<h1>Area of interest report</h1>
<p>Generated {esc(d["generated_at"])}. Area {d["area_km2"]:.3f} km² (geodesic, WGS 84).
Free ground {free["area_km2"]:.3f} km² ({free["share_pct"]:.2f} %).</p>
<figure>{_svg(rep)}<figcaption class=legend>{legend}
<span><i style="background:{FREE_COLOUR}"></i>free ground</span>
<span>dashed: the area of interest</span></figcaption></figure>
<h2>Licences and applications ({len(d["licences"])})</h2>
<table><tr><th>Licence</th><th>Type</th><th>Status</th><th>Holder</th><th>Minerals</th>
<th>Overlap km²</th><th>% of area</th><th>% of licence</th></tr>{rows}</table>
<h2>Reserved areas ({len(d["reserved_areas"])})</h2>
<table><tr><th>Name</th><th>Kind</th><th>Overlap km²</th><th>% of area</th></tr>{reserved}</table>
<h2>Survey layers</h2><ul>{"".join(layers) or "<li>none in this area</li>"}</ul>
</body></html>"""
