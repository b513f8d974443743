"""Fixtures for raster survey layers: small rasters made in tmp_path, a raster folder per test.

The test raster is WGS 84 / UTM 41N over Chagai: 300 x 200 pixels of 100 m,
float32 values from a fixed seed, nodata -9999 in a block (rows 50-89, cols
100-159) and along the last column. Its corners are kept in module constants
so tests can place polygons and points.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.transform import from_origin

from api.app import create_app
from cadastre.settings import Settings
from cadastre.survey.raster import RasterMeta, import_raster
from tests.conftest import SavepointDatabase
from tests.live import ADMIN

CRS = "EPSG:32641"
X0, Y1, PIXEL = 400_000.0, 3_240_000.0, 100.0
WIDTH, HEIGHT = 300, 200
NODATA = -9999.0
HOLE = (slice(50, 90), slice(100, 160))  # rows, cols of the nodata block


def make_values(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(50.0, 20.0, (HEIGHT, WIDTH)).astype(np.float32)
    values[HOLE] = NODATA
    values[:, -1] = NODATA
    return values


def write_raster(path: Path, values: np.ndarray | None = None, **overrides: Any) -> Path:
    """A GeoTIFF like the test raster; ``overrides`` change the profile (crs=None drops it)."""
    data = make_values() if values is None else values
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": data.shape[-1],
        "height": data.shape[-2],
        "count": 1 if data.ndim == 2 else data.shape[0],
        "dtype": str(data.dtype),
        "crs": CRS,
        "transform": from_origin(X0, Y1, PIXEL, PIXEL),
        "nodata": NODATA,
    }
    profile.update(overrides)
    if profile["crs"] is None:
        del profile["crs"]
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data if data.ndim == 3 else data[np.newaxis])
    return path


def meta(slug: str = "magtest", **kw: Any) -> RasterMeta:
    values: dict[str, Any] = {
        "slug": slug,
        "name": "Test magnetic grid",
        "kind": "geophysics",
        "source": "tests",
        "licence": "CC0-1.0",
        "units": "nT",
    }
    values.update(kw)
    return RasterMeta(**values)


@pytest.fixture
def raster_dir(tmp_path: Path) -> Path:
    return tmp_path / "rasters"


@pytest.fixture
def raster_settings(settings: Settings, raster_dir: Path) -> Settings:
    return settings.model_copy(update={"raster_dir": raster_dir})


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_raster(tmp_path / "source.tif")


@pytest.fixture
def imported(db: SavepointDatabase, raster_dir: Path, source: Path) -> dict[str, Any]:
    return import_raster(db, raster_dir, source, meta(), actor="tester")


@pytest.fixture
def rclient(raster_settings: Settings, db: SavepointDatabase) -> Iterator[TestClient]:
    """The raster app, signed in as an admin: test rasters are not public, and only
    signed-in callers read those. What anonymous callers see is tested on its own."""
    with TestClient(create_app(raster_settings, db=db), headers=ADMIN) as c:
        yield c
