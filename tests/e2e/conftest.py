"""The portal in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The module's service is the real one over a database of its own in the test cluster,
loaded by the real ``cadastre load-sample`` (provinces, reserved areas, 3,000 synthetic
licences, survey layers with the districts, the synthetic aeromagnetic grid), under uvicorn
on a free local port. No browser is downloaded: Playwright drives /usr/bin/chromium.
Screenshots of every step go to tests/artifacts/portal/.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from api.app import create_app
from cadastre.cli import app as cli_app
from cadastre.db.cluster import LocalCluster
from cadastre.db.engine import make_engine
from cadastre.settings import Settings
from tests.live import live_server, scratch_database

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "portal"
PORTAL = Path(__file__).resolve().parents[2] / "portal" / "dist" / "index.html"


@dataclass(frozen=True)
class Portal:
    url: str
    db_url: str
    engine: Engine
    raster_dir: Path

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()

    def cli(self, *args: str, input: str | None = None) -> str:
        env = {"CADASTRE_DATABASE_URL": self.db_url, "CADASTRE_RASTER_DIR": str(self.raster_dir)}
        result = CliRunner().invoke(cli_app, list(args), env=env, input=input)
        assert result.exit_code == 0, result.output
        return result.output


@pytest.fixture(scope="package")
def portal(cluster: LocalCluster) -> Iterator[Portal]:
    if not PORTAL.is_file():
        pytest.fail(f"the portal is not built ({PORTAL} is missing): run scripts/setup.sh")
    with (
        scratch_database(cluster, "portal_e2e") as url,
        tempfile.TemporaryDirectory(prefix="cadastre-e2e-rasters-") as rasters,
    ):
        engine = make_engine(url, pool_size=2)
        try:
            settings = Settings(environment="test", database_url=url, raster_dir=Path(rasters))
            app = create_app(settings)
            here = Portal("", url, engine, Path(rasters))
            here.cli("load-sample")
            with live_server(app, "uvicorn-portal-e2e") as base:
                yield Portal(base, url, engine, Path(rasters))
        finally:
            engine.dispose()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail("/usr/bin/chromium is missing: scripts/setup.sh installs Debian's chromium")
    args = [
        # WebGL without a GPU: ANGLE over SwiftShader, software rendering.
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
        "--ignore-gpu-blocklist",
    ]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run sandboxed as root (CI)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser, portal: Portal) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield pg
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page: Page, name: str) -> Path:
    """A screenshot of the page as it is, kept as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
