"""Settings, read from the environment (prefix ``CADASTRE_``) by the program that runs.

The library takes a :class:`Settings` object as an argument; nothing in
``cadastre`` reads the environment at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cadastre.domain.geometry import ShapeLimits


class Settings(BaseSettings):
    """Runtime configuration of the register and the service."""

    model_config = SettingsConfigDict(env_prefix="CADASTRE_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of an existing PostGIS database. When unset, the "
        "project's own local cluster (see `cadastre db start`) is used.",
    )
    data_dir: Path = Field(
        default=Path(".cadastre"),
        description="Where the local PostGIS cluster keeps its data, socket and log.",
    )
    pg_port: int = Field(default=55433, description="Port of the local cluster.")
    pg_listen: str = Field(
        default="127.0.0.1",
        description="listen_addresses of the local cluster ('' for the Unix socket only).",
    )
    register_timezone: str = Field(
        default="Asia/Karachi",
        description="Time zone in which a calendar date (as_of, receipt date) is read.",
    )
    boundary_tolerance_m2: float = Field(
        default=100.0,
        description="Overlap with a neighbouring province (or outside Pakistan) below this "
        "many square metres is treated as touching, not crossing.",
    )
    overlap_tolerance_m2: float = Field(
        default=100.0,
        description="Overlaps up to this many square metres count as touching, not conflicts.",
    )
    tie_break: Literal["ballot", "auction", "committee"] = Field(
        default="ballot",
        description="How simultaneous applications (same receipt date) are decided; "
        "Balochistan Mineral Rules 2002 r.10 leave it to the authority.",
    )
    listen_generation: bool = Field(
        default=True,
        description="Follow committed changes by LISTEN, so cached tiles are served "
        "without asking the database (off: ask it on every tile).",
    )
    tile_queries: int = Field(
        default_factory=lambda: 2 * (os.cpu_count() or 1),
        ge=1,
        description="Tiles made by PostGIS at the same time; more requests wait their turn "
        "in the event loop (default twice the CPU count: more only adds contention).",
    )
    max_upload_mb: int = Field(
        default=200,
        ge=1,
        description="Largest survey-layer upload accepted by the service, in MB (MiB), "
        "multipart envelope included; a larger one is refused with 413.",
    )
    raster_dir: Path | None = Field(
        default=None,
        description="Where imported rasters are kept as Cloud-Optimised GeoTIFFs; "
        "unset = the folder `rasters` inside data_dir.",
    )
    raster_upload_max_bytes: int = Field(
        default=1024 * 1024 * 1024,
        gt=0,
        description="Largest raster file POST /rasters accepts, in bytes (1 GiB).",
    )
    log_format: Literal["json", "plain"] | None = Field(
        default=None,
        description="Log lines as JSON objects (one a line) or plain text; unset = plain "
        "when stderr is a terminal, JSON otherwise.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level of the service's log lines."
    )
    access_log: bool = Field(
        default=True,
        description="One log line per request: method, path, status, duration, request id.",
    )
    max_vertices: int = Field(
        default=100_000,
        ge=4,
        description="Most vertices a submitted or imported licence shape (or AOI) may have.",
    )
    max_parts: int = Field(
        default=1_000,
        ge=1,
        description="Most polygons a submitted or imported multipolygon (or AOI) may have.",
    )
    max_import_features: int = Field(
        default=2_000_000,
        ge=1,
        description="Most features one import may hold (licence files, survey layers).",
    )
    max_body_mb: int = Field(
        default=16,
        ge=1,
        description="Largest request body of the JSON routes (licences, checks, reports, "
        "raster statistics), in MB (MiB); a larger one is refused with 413. Uploads have "
        "their own limits (max_upload_mb, raster_upload_max_bytes).",
    )
    max_bbox_deg2: float = Field(
        default=400.0,
        gt=0,
        description="Largest bbox of an item query (GET /licences, /collections/{id}/items), "
        "in square degrees (width x height); all of Pakistan is about 17.5 x 14 = 245.",
    )
    max_zip_entries: int = Field(
        default=1000,
        ge=1,
        description="Most entries a zipped Shapefile upload or import may hold.",
    )
    max_zip_uncompressed_mb: int = Field(
        default=2048,
        ge=1,
        description="Largest total uncompressed size of a zipped Shapefile, in MB (MiB): "
        "a zip bomb is refused before anything is read.",
    )
    db_role: str = Field(
        default="cadastre_service",
        description="Database role the service and the CLI act as (SET ROLE): it cannot "
        "UPDATE, DELETE or TRUNCATE the event log. Empty: act as the login role.",
    )
    secret_key: str = Field(
        default="",
        description="Key signing the access tokens (at least 32 characters). Required "
        "outside development mode; in development an empty key is replaced by a random "
        "one for the life of the process (tokens then end with it).",
        repr=False,
    )
    token_minutes: int = Field(
        default=30,
        ge=1,
        le=24 * 60,
        description="Minutes an access token from POST /auth/token is valid.",
    )
    portal_dir: Path | None = Field(
        default=None,
        description="The built map portal (index.html and assets/); unset: portal/dist of "
        "this checkout, built by scripts/setup.sh.",
    )
    basemap_url: str | None = Field(
        default=None,
        description="An XYZ raster tile URL template ({z}/{x}/{y}) drawn under the portal's "
        "map; unset: no basemap, nothing is fetched from outside.",
    )
    basemap_attribution: str = Field(
        default="",
        description="The credit line the basemap's provider asks for, shown on the map.",
    )
    page_default: int = 100
    page_max: int = 10_000
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def shape_limits(self) -> ShapeLimits:
        """The size limits of a submitted shape, for the geometry intake."""
        return ShapeLimits(
            max_vertices=self.max_vertices,
            max_parts=self.max_parts,
            max_features=self.max_import_features,
        )

    @property
    def rasters(self) -> Path:
        """The folder of imported rasters (``raster_dir``, else ``data_dir/rasters``)."""
        return self.raster_dir if self.raster_dir is not None else self.data_dir / "rasters"

    @property
    def portal(self) -> Path:
        """The built portal's folder (``portal_dir``, else ``portal/dist`` of the checkout)."""
        if self.portal_dir is not None:
            return self.portal_dir
        return Path(__file__).resolve().parent.parent / "portal" / "dist"
