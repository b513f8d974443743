"""The area-of-interest report's raster part, against rasterio.mask and numpy.

The report gives, per raster survey layer the area meets, the statistics of the
pixels whose centres lie in the area (nodata excluded): the same numbers as an
independent computation on the source file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import box, mapping

from tests.raster.test_statistics import TO_LL, TO_UTM, check, reference


def area(x0: float, y0: float, x1: float, y1: float) -> Any:
    """A lon/lat box over UTM corners, densified so its edges agree in both CRSs."""
    lon0, lat0 = TO_LL.transform(x0, y0)
    lon1, lat1 = TO_LL.transform(x1, y1)
    return shapely.segmentize(box(lon0, lat0, lon1, lat1), 0.0005)


def raster_part(client: TestClient, geom: Any) -> dict[str, Any]:
    r = client.post("/aoi/report", json=mapping(geom))
    assert r.status_code == 200, r.text
    found = [layer for layer in r.json()["survey"]["raster"] if layer["slug"] == "magtest"]
    assert len(found) == 1, r.json()["survey"]["raster"]
    return found[0]


def test_report_gives_the_statistics_of_the_covered_pixels(
    rclient: TestClient, imported: Any, source: Path
) -> None:
    ll = area(402_000.0, 3_222_000.0, 421_000.0, 3_237_000.0)  # over the nodata block too
    part = raster_part(rclient, ll)
    in_utm = shapely.transform(ll, lambda xy: np.column_stack(TO_UTM.transform(*xy.T)))
    values = reference(source, in_utm)
    check({"bands": part["bands"]}, values)
    assert part["statistics"] == part["bands"][0]
    assert part["units"] == "nT"
    assert part["name"] == "Test magnetic grid"
    assert part["pixels_covered"] > values.size  # the nodata pixels are covered, not counted


def test_report_leaves_out_rasters_the_area_misses(rclient: TestClient, imported: Any) -> None:
    r = rclient.post("/aoi/report", json={"bbox": [70.0, 30.0, 70.1, 30.1]})
    assert r.status_code == 200, r.text
    assert [x["slug"] for x in r.json()["survey"]["raster"]] == []


def test_report_page_shows_the_raster(rclient: TestClient, imported: Any) -> None:
    ll = area(402_000.0, 3_222_000.0, 421_000.0, 3_237_000.0)
    page = rclient.post("/aoi/report?f=html", json=mapping(ll)).text
    assert "Test magnetic grid (nT): count " in page
