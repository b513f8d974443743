"""What a person does with the portal, in a real browser, against the real service."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import pytest
import shapely
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Portal, shot

READY = 60_000  # ms: the first load draws the whole country in software WebGL


def open_portal(page: Page, portal: Portal) -> None:
    page.goto(f"{portal.url}/")
    page.wait_for_function("() => window.portal && window.portal.ready === true", timeout=READY)


def settle(page: Page) -> None:
    """Wait until the map has drawn everything it is loading."""
    page.evaluate(
        """() => new Promise(done => {
            const map = window.portal.map;
            map.once('idle', done);
            map.triggerRepaint();
        })"""
    )


def fit(page: Page, box: tuple[float, float, float, float], padding: int = 80) -> None:
    page.evaluate(
        """([w, s, e, n, padding]) => window.portal.map.fitBounds(
            [[w, s], [e, n]], {padding, duration: 0})""",
        [*box, padding],
    )
    settle(page)


def rendered(page: Page, layer: str) -> list[dict[str, Any]]:
    """Features the map library has drawn in a style layer: id and properties."""
    result: list[dict[str, Any]] = page.evaluate(
        """layer => window.portal.map.queryRenderedFeatures({layers: [layer]})
            .map(f => ({id: f.id, properties: f.properties}))""",
        layer,
    )
    return result


def screen_point(page: Page, lon: float, lat: float) -> tuple[float, float]:
    """Page coordinates of a lon/lat on the map canvas."""
    box = page.locator("#map canvas").bounding_box()
    assert box is not None
    pt = page.evaluate("([lon, lat]) => window.portal.map.project([lon, lat])", [lon, lat])
    return box["x"] + pt["x"], box["y"] + pt["y"]


def shown(x: float, digits: int) -> str:
    """A number as the portal shows it in English (grouped, at most ``digits`` decimals)."""
    return f"{round(x, digits):,.{digits}f}".rstrip("0").rstrip(".")


@pytest.fixture(scope="module")
def target(portal: Portal) -> dict[str, Any]:
    """A granted licence in Punjab that nothing else touches: clicking it can hit nothing else."""
    [row] = portal.rows(
        """
        SELECT l.id, l.licence_no, p.name AS holder, l.licence_type, l.status,
               ST_X(ST_PointOnSurface(l.geom)) AS lon, ST_Y(ST_PointOnSurface(l.geom)) AS lat,
               ST_XMin(l.geom) AS w, ST_YMin(l.geom) AS s, ST_XMax(l.geom) AS e,
               ST_YMax(l.geom) AS n
        FROM licences l JOIN parties p ON p.id = l.holder_id
        WHERE l.status = 'granted' AND l.province_code = 'PK-PB' AND l.published
          AND NOT EXISTS (SELECT 1 FROM licences o
                          WHERE o.id <> l.id AND ST_DWithin(o.geom, l.geom, 0.05))
          AND NOT EXISTS (SELECT 1 FROM reserved_areas r
                          WHERE ST_DWithin(r.geom, l.geom, 0.05))
        ORDER BY l.area_km2 DESC, l.id
        LIMIT 1
        """
    )
    return row


def box_of(t: dict[str, Any], grow: float = 0.0) -> tuple[float, float, float, float]:
    dx, dy = (t["e"] - t["w"]) * grow, (t["n"] - t["s"]) * grow
    return t["w"] - dx, t["s"] - dy, t["e"] + dx, t["n"] + dy


def draw(page: Page, corners: list[tuple[float, float]]) -> None:
    """Click each corner on the map, then Finish."""
    for lon, lat in corners:
        x, y = screen_point(page, lon, lat)
        page.mouse.click(x, y)
    page.get_by_role("button", name="Finish").click()


# ------------------------------------------------------------------------------------ map


def test_the_map_draws_licences_coloured_by_status(page: Page, portal: Portal) -> None:
    open_portal(page, portal)
    drawn = rendered(page, "licences-fill")
    assert drawn, "no licence drawn on the national map"
    statuses = {r["status"] for r in portal.rows("SELECT DISTINCT status FROM licences")}
    assert {f["properties"]["status"] for f in drawn} <= statuses
    ids = {f["id"] for f in drawn}
    known = {r["id"] for r in portal.rows("SELECT id FROM licences")}
    assert ids <= known
    # The small ones are counted in the density cells, so the country loses no ground.
    assert rendered(page, "licence-density")
    assert rendered(page, "provinces-line")
    # A legend entry for every status, and the layers in the switcher.
    legend = page.locator("#legend-list li[data-status]")
    assert {legend.nth(i).get_attribute("data-status") for i in range(legend.count())} >= statuses
    for name in ("Provinces", "Districts", "Reserved areas", "Mineral occurrences (USGS)"):
        expect(page.locator("#layer-list")).to_contain_text(name)
    shot(page, "01-map")


def test_survey_and_raster_layers_switch_on(page: Page, portal: Portal) -> None:
    open_portal(page, portal)
    fit(page, (61.3, 28.4, 64.6, 30.2))  # Chagai: the synthetic grid and geology
    assert not rendered(page, "survey:geology_synthetic:fill")
    tiles: list[str] = []
    page.on(
        "response",
        lambda r: tiles.append(r.url) if "/rasters/" in r.url and r.status == 200 else None,
    )
    page.locator('input[data-layer="survey:geology_synthetic"]').check()
    page.locator('input[data-layer="raster:aeromag_chagai_synthetic"]').check()
    page.get_by_label(re.compile("Colour map: Chagai")).select_option("magma")
    settle(page)
    assert rendered(page, "survey:geology_synthetic:fill")
    assert any("colormap=magma" in u and u.split("?")[0].endswith(".png") for u in tiles), tiles
    expect(page.locator("#legend-list .ramp")).to_contain_text("magma")
    expect(page.locator("#legend-list .ramp .ends")).to_contain_text("nT")
    shot(page, "02-survey-layers")


# ----------------------------------------------------------------------------- the card


def test_clicking_a_licence_shows_its_card_and_history(
    page: Page, portal: Portal, target: dict[str, Any]
) -> None:
    open_portal(page, portal)
    fit(page, box_of(target, 0.5))
    x, y = screen_point(page, target["lon"], target["lat"])
    under = page.evaluate(
        "([x, y]) => window.portal.map.queryRenderedFeatures([x, y], {layers: ['licences-fill']})"
        ".map(f => f.id)",
        [x - page.locator("#map canvas").bounding_box()["x"],  # type: ignore[index]
         y - page.locator("#map canvas").bounding_box()["y"]],  # type: ignore[index]
    )  # fmt: skip
    assert under == [target["id"]]
    page.mouse.click(x, y)
    card = page.locator("#card")
    expect(card).to_be_visible()
    expect(card.locator('dd[data-field="holder"]')).to_have_text(target["holder"])
    expect(card.locator('dd[data-field="licence_no"]')).to_have_text(target["licence_no"])
    events = portal.rows(
        "SELECT action, actor FROM licence_events WHERE licence_id = :id ORDER BY id",
        id=target["id"],
    )
    rows = card.locator("#card-history tbody tr")
    expect(rows).to_have_count(len(events))
    expect(rows.first).to_contain_text(events[0]["action"])
    shot(page, "03-licence-card")


def test_search_flies_to_the_licence(page: Page, portal: Portal, target: dict[str, Any]) -> None:
    open_portal(page, portal)
    page.get_by_role("searchbox").fill(target["licence_no"])
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator('#card dd[data-field="licence_no"]')).to_have_text(target["licence_no"])
    page.wait_for_function(
        """([lon, lat]) => {
            const m = window.portal.map;
            const c = m.getCenter();
            return !m.isMoving() && m.getZoom() > 9
                && Math.abs(c.lng - lon) < 0.1 && Math.abs(c.lat - lat) < 0.1;
        }""",
        arg=[(target["w"] + target["e"]) / 2, (target["s"] + target["n"]) / 2],
        timeout=20_000,
    )
    # A holder's name finds its licences too, whatever the case.
    page.get_by_role("searchbox").fill(target["holder"].lower())
    page.get_by_role("searchbox").press("Enter")
    n = portal.scalar(
        "SELECT count(*) FROM licences l JOIN parties p ON p.id = l.holder_id "
        "WHERE p.name ILIKE :h AND l.published",
        h=f"%{target['holder']}%",
    )
    expect(page.locator("#results-count")).to_have_text(f"{n:,} found")
    shot(page, "04-search")


# ---------------------------------------------------------------------------- languages


def test_urdu_and_chinese_with_the_choice_remembered(page: Page, portal: Portal) -> None:
    open_portal(page, portal)
    page.locator("#lang").select_option("ur")
    assert page.evaluate("document.documentElement.dir") == "rtl"
    assert page.evaluate("document.documentElement.lang") == "ur"
    expect(page.locator("#layers summary")).to_have_text("پرتیں")
    expect(page.locator("#legend-list")).to_contain_text("منظور شدہ")
    expect(page.locator("#layer-list")).to_contain_text("صوبے")
    shot(page, "05-urdu")
    open_portal(page, portal)  # remembered across visits
    expect(page.locator("#layers summary")).to_have_text("پرتیں")
    assert page.evaluate("document.documentElement.dir") == "rtl"
    page.locator("#lang").select_option("zh")
    assert page.evaluate("document.documentElement.dir") == "ltr"
    expect(page.locator("#layers summary")).to_have_text("图层")
    expect(page.locator("#legend-list")).to_contain_text("已授予")
    expect(page.get_by_role("button", name="搜索")).to_be_visible()
    shot(page, "06-chinese")


# ---------------------------------------------------------------------- area of interest


def test_drawing_an_area_gives_its_report_and_free_ground(
    page: Page, portal: Portal, target: dict[str, Any]
) -> None:
    open_portal(page, portal)
    w, s, e, n = box_of(target, 0.6)
    fit(page, (w, s, e, n), padding=120)
    page.locator("#aoi summary").click()
    page.get_by_role("button", name="Draw on the map").first.click()
    draw(page, [(w, s), (e, s), (e, n), (w, n)])
    expect(page.locator("#aoi-report .aoi-area")).to_be_visible(timeout=20_000)
    settle(page)
    drawn = page.evaluate("() => window.portal.map.getSource('aoi').getData()")
    report = httpx.post(f"{portal.url}/aoi/report", json=drawn["geometry"], timeout=30).json()
    assert [lic["licence_no"] for lic in report["licences"]] == [target["licence_no"]]
    expect(page.locator("#aoi-report .aoi-licences")).to_have_text("Licences and applications: 1")
    expect(page.locator("#aoi-report")).to_contain_text(target["licence_no"])
    free = report["free_ground"]
    assert 0 < free["area_km2"] < report["area_km2"]
    expect(page.locator("#aoi-report .aoi-free")).to_contain_text(shown(free["area_km2"], 2))
    assert rendered(page, "free-fill"), "the free ground is not drawn"
    assert rendered(page, "aoi-line")
    shot(page, "07-aoi-report")


def test_uploading_a_zipped_shapefile_gives_its_report(
    page: Page, portal: Portal, tmp_path: Path
) -> None:
    # A 10 km square in UTM 42N (EPSG:32642) near Quetta: the service reads the .prj.
    square = shapely.box(330000, 3340000, 340000, 3350000)
    frame = gpd.GeoDataFrame({"name": ["block"]}, geometry=[square], crs="EPSG:32642")
    frame.to_file(tmp_path / "block.shp")
    archive = tmp_path / "block.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in tmp_path.glob("block.*"):
            if part != archive:
                z.write(part, part.name)
    open_portal(page, portal)
    page.locator("#aoi summary").click()
    page.locator("#aoi-file").set_input_files(str(archive))
    area = page.locator("#aoi-report .aoi-area")
    expect(area).to_be_visible(timeout=20_000)
    km2 = float(re.sub(r"[^\d.]", "", area.inner_text()))
    assert 99.0 < km2 < 101.0, km2  # geodesic area of 10 km x 10 km of UTM grid
    settle(page)
    assert rendered(page, "aoi-line")
    shot(page, "08-aoi-upload")


def test_uploading_a_kml_gives_its_report(page: Page, portal: Portal, tmp_path: Path) -> None:
    kml = tmp_path / "area.kml"
    kml.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
        "<Placemark><name>area</name><Polygon><outerBoundaryIs><LinearRing><coordinates>"
        "66.9,30.1 67.1,30.1 67.1,30.3 66.9,30.3 66.9,30.1"
        "</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark></kml>"
    )
    open_portal(page, portal)
    page.locator("#aoi summary").click()
    page.locator("#aoi-file").set_input_files(str(kml))
    expect(page.locator("#aoi-report .aoi-area")).to_be_visible(timeout=20_000)
    report = httpx.post(
        f"{portal.url}/aoi/report", json={"bbox": [66.9, 30.1, 67.1, 30.3]}, timeout=30
    ).json()
    expect(page.locator("#aoi-report .aoi-licences")).to_have_text(
        f"Licences and applications: {len(report['licences'])}"
    )


# -------------------------------------------------------------------- filters and lists


def test_filters_change_the_map_the_list_and_the_download(page: Page, portal: Portal) -> None:
    open_portal(page, portal)
    page.locator("#filters summary").click()
    page.locator('#status-boxes input[value="applied"]').check()
    page.locator("#filter-form select[name=province]").select_option("PK-BA")
    page.get_by_role("button", name="Apply").click()
    expected = portal.scalar(
        "SELECT count(*) FROM licences "
        "WHERE status = 'applied' AND province_code = 'PK-BA' AND published"
    )
    expect(page.locator("#list-count")).to_contain_text(f"{expected:,} licences match")
    rows = page.locator("#list-rows button")
    assert rows.count() == min(expected, 50)
    settle(page)
    drawn = rendered(page, "licences-fill")
    assert drawn and {f["properties"]["status"] for f in drawn} == {"applied"}
    ids = {f["id"] for f in drawn}
    allowed = {
        r["id"]
        for r in portal.rows(
            "SELECT id FROM licences "
            "WHERE status = 'applied' AND province_code = 'PK-BA' AND published"
        )
    }
    assert ids <= allowed
    shot(page, "09-filters")
    with page.expect_download() as got:
        page.get_by_role("button", name="Download CSV").click()
    table = list(csv.DictReader(io.StringIO(Path(got.value.path()).read_text())))
    assert len(table) == expected
    assert {r["status"] for r in table} == {"applied"}
    assert {r["province"] for r in table} == {"Balochistan"}
    with page.expect_download() as got:
        page.get_by_role("button", name="Download GeoJSON").click()
    collection = json.loads(Path(got.value.path()).read_text())
    assert {f["id"] for f in collection["features"]} == allowed
    # Dates: granted from 2020 on.
    page.locator("#filter-form select[name=datefield]").select_option("granted_on")
    page.locator("#filter-form input[name=from]").fill("2020-01-01")
    page.locator('#status-boxes input[value="applied"]').uncheck()
    page.locator('#status-boxes input[value="granted"]').check()
    page.get_by_role("button", name="Apply").click()
    since = portal.scalar(
        "SELECT count(*) FROM licences WHERE status = 'granted' AND province_code = 'PK-BA' "
        "AND granted_on >= DATE '2020-01-01'"
    )
    expect(page.locator("#list-count")).to_contain_text(f"{since:,} licences match")
    settle(page)
    drawn = rendered(page, "licences-fill")
    assert drawn and {f["properties"]["status"] for f in drawn} == {"granted"}
    recent = portal.rows(
        "SELECT id FROM licences WHERE status = 'granted' AND province_code = 'PK-BA' "
        "AND granted_on >= DATE '2020-01-01'"
    )
    assert {f["id"] for f in drawn} <= {r["id"] for r in recent}


# ------------------------------------------------------------------ phone and keyboard


def test_on_a_phone_by_keyboard(browser: Any, portal: Portal, target: dict[str, Any]) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    try:
        open_portal(page, portal)
        assert page.locator("#map canvas").bounding_box()["width"] <= 390  # type: ignore[index]
        expect(page.locator("#panel-toggle")).to_be_visible()
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "search"
        page.keyboard.type(target["licence_no"])
        page.keyboard.press("Enter")
        expect(page.locator('#card dd[data-field="holder"]')).to_have_text(target["holder"])
        page.wait_for_function(
            "() => !window.portal.map.isMoving() && window.portal.map.getZoom() > 9",
            timeout=20_000,
        )
        settle(page)
        shot(page, "10-phone")
        page.locator("#panel-toggle").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#panel")).to_be_hidden()
    finally:
        context.close()


# ------------------------------------------------------------------------------ officers


def test_an_officer_checks_an_overlapping_candidate(
    page: Page, portal: Portal, target: dict[str, Any]
) -> None:
    portal.cli(
        "users", "add", "officer.lahore", "--role", "officer", "--province", "PK-PB",
        "--password-stdin", input="correct horse battery\n",
    )  # fmt: skip
    open_portal(page, portal)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("User name").fill("officer.lahore")
    page.get_by_label("Password").fill("correct horse battery")
    page.locator("#signin-form button[type=submit]").click()
    expect(page.locator("#whoami")).to_contain_text("officer.lahore (officer)")
    assert page.evaluate("sessionStorage.getItem('cadastre.portal.token')")
    candidate = page.locator("#candidate")
    expect(candidate).to_be_visible()
    # A candidate over the western half of the target licence.
    w, s, e, n = box_of(target, 0.1)
    mid = (w + e) / 2
    fit(page, box_of(target, 0.8), padding=100)
    candidate.locator("summary").click()
    candidate.locator("select[name=licence_type]").select_option("exploration_licence")
    candidate.locator("input[name=minerals]").fill("Gypsum")
    candidate.locator("input[name=holder]").fill("Ravi Gypsum (Pvt) Ltd")
    candidate.get_by_role("button", name="Draw on the map").click()
    draw(page, [(w - (e - w) * 0.3, s), (mid, s), (mid, n), (w - (e - w) * 0.3, n)])
    candidate.get_by_role("button", name="Check overlaps").click()
    conflict = page.locator(f'#candidate-report li[data-conflict="{target["licence_no"]}"]')
    expect(conflict).to_be_visible(timeout=20_000)
    drawn = page.evaluate("() => window.portal.map.getSource('aoi').getData()")
    token = page.evaluate("sessionStorage.getItem('cadastre.portal.token')")
    check = httpx.post(
        f"{portal.url}/overlaps/check",
        json={
            "type": "Feature",
            "geometry": drawn["geometry"],
            "properties": {"licence_type": "exploration_licence", "minerals": ["Gypsum"]},
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    [mine] = [c for c in check["conflicts"] if c["licence_no"] == target["licence_no"]]
    expect(conflict).to_contain_text(f"overlap {shown(mine['overlap_km2'], 3)} km²")
    settle(page)
    assert rendered(page, "conflicts-fill"), "the conflict is not drawn"
    shot(page, "11-officer-check")
    # Submitted, the application is the officer's, with the conflict recorded.
    submit = candidate.get_by_role("button", name="Submit application")
    expect(submit).to_be_enabled()
    submit.click()
    done = page.locator("#candidate-report p.ok").last
    expect(done).to_contain_text("received", timeout=20_000)
    number = re.search(r"Application (\S+) received", done.inner_text())
    assert number is not None
    [made] = portal.rows(
        "SELECT l.status, l.licence_type, e.actor FROM licences l "
        "JOIN licence_events e ON e.licence_id = l.id WHERE l.licence_no = :no",
        no=number.group(1),
    )
    assert made == {"status": "applied", "licence_type": "exploration_licence",
                    "actor": "officer.lahore"}  # fmt: skip
