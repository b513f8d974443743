"""The /rasters catalogue over HTTP: upload (streamed, size-limited), list, get, delete."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rio_cogeo.cogeo import cog_validate

from api.app import create_app
from cadastre.settings import Settings
from tests.conftest import SavepointDatabase
from tests.live import ADMIN
from tests.raster.conftest import write_raster

FIELDS = {
    "slug": "upload_test",
    "name": "Uploaded grid",
    "kind": "geophysics",
    "source": "tests",
    "licence": "CC0-1.0",
    "units": "nT",
}
ACTOR = ADMIN  # filled when the session database is made


def upload(
    client: TestClient, path: Path, headers: dict[str, str] | None = None, **fields: Any
) -> Any:
    data = {**FIELDS, **{k: str(v) for k, v in fields.items()}}
    with path.open("rb") as fh:
        return client.post(
            "/rasters",
            data=data,
            files={"file": (path.name, fh, "image/tiff")},
            headers=ACTOR if headers is None else headers,
        )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_upload_list_get_delete(rclient: TestClient, source: Path, raster_dir: Path) -> None:
    r = upload(rclient, source, synthetic="true")
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["slug"] == "upload_test"
    assert entry["synthetic"] is True
    assert entry["loaded_by"] == "test-admin"  # the signed-in account
    stored = raster_dir / entry["raster"]["path"]
    assert leftovers(raster_dir) == [stored.name]  # the upload's temporary file is gone
    assert cog_validate(str(stored), quiet=True)[0]

    listed = rclient.get("/rasters").json()["rasters"]
    assert [e["slug"] for e in listed] == ["upload_test"]
    one = rclient.get("/rasters/upload_test").json()
    assert one["raster"]["statistics"][0]["count"] > 0
    assert one["raster"]["units"] == "nT"
    assert "crs_wkt" not in one["raster"]
    assert len(one["bbox"]) == 4

    assert rclient.delete("/rasters/upload_test", headers=ACTOR).status_code == 204
    assert rclient.get("/rasters/upload_test").status_code == 404
    assert leftovers(raster_dir) == []


def test_upload_of_existing_slug_is_409_naming_it(rclient: TestClient, source: Path) -> None:
    assert upload(rclient, source).status_code == 201
    r = upload(rclient, source)
    assert r.status_code == 409
    assert "'upload_test'" in r.json()["detail"]
    r = upload(rclient, source, replace="true", name="second")
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "second"


def test_upload_needs_a_geologist_or_admin(
    raster_settings: Settings,
    db: SavepointDatabase,
    credentials: Any,
    source: Path,
    raster_dir: Path,
) -> None:
    """Anonymous: 401 before the body is read; an officer: 403 naming the rule; nothing
    is written either way. A geologist may load and remove a raster."""
    with TestClient(create_app(raster_settings, db=db)) as anon:
        r = upload(anon, source, headers={})
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert anon.delete("/rasters/upload_test").status_code == 401
        officer = credentials("officer", "PK-BA")
        r = upload(anon, source, headers=officer)
        assert r.status_code == 403, r.text
        assert r.json()["where"]["rule"] == "survey_writers"
        assert leftovers(raster_dir) == []
        assert anon.get("/rasters/upload_test").status_code == 404
        geologist = credentials("geologist")
        assert upload(anon, source, headers=geologist).status_code == 201
        assert anon.delete("/rasters/upload_test", headers=officer).status_code == 403
        assert anon.delete("/rasters/upload_test", headers=geologist).status_code == 204


def test_bad_file_is_422_and_leaves_nothing(
    rclient: TestClient, tmp_path: Path, raster_dir: Path
) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    r = upload(rclient, bad)
    assert r.status_code == 422
    assert r.json()["code"] == "raster_refused"
    assert "not a raster GDAL can read" in r.json()["detail"]
    assert leftovers(raster_dir) == []
    assert rclient.get("/rasters").json()["rasters"] == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "astrology"}, "kind"),
        ({"slug": "Not OK"}, "slug"),
        ({"synthetic": "maybe"}, "synthetic"),
        ({"licence": ""}, "licence"),
    ],
)
def test_bad_form_field_is_422_naming_it(
    rclient: TestClient, source: Path, raster_dir: Path, fields: dict[str, str], field: str
) -> None:
    r = upload(rclient, source, **fields)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert leftovers(raster_dir) == []


def test_upload_without_a_file_or_not_multipart_is_422(rclient: TestClient) -> None:
    r = rclient.post("/rasters", data=FIELDS, files={"other": ("x.txt", b"x")}, headers=ACTOR)
    assert r.status_code == 422
    assert r.json()["field"] == "file"
    r = rclient.post("/rasters", json=FIELDS, headers=ACTOR)
    assert r.status_code == 422
    assert r.json()["field"] == "body"


@pytest.fixture
def small_limit_client(raster_settings: Settings, db: SavepointDatabase) -> Iterator[TestClient]:
    settings = raster_settings.model_copy(update={"raster_upload_max_bytes": 50_000})
    with TestClient(create_app(settings, db=db), headers=ADMIN) as c:
        yield c


def test_upload_over_the_limit_is_413_naming_it(
    small_limit_client: TestClient, source: Path, raster_dir: Path
) -> None:
    assert source.stat().st_size > 50_000
    r = upload(small_limit_client, source)
    assert r.status_code == 413
    assert "50000 bytes" in r.json()["detail"]
    assert leftovers(raster_dir) == []


def test_streamed_upload_over_the_limit_is_413(
    small_limit_client: TestClient, source: Path, raster_dir: Path
) -> None:
    # No Content-Length: the limit is enforced while the body streams in.
    boundary = "xyzBOUNDARY"
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in FIELDS.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.tif"\r\n'
        "Content-Type: image/tiff\r\n\r\n"
    )

    def body() -> Iterator[bytes]:
        yield head.encode()
        for _ in range(20):
            yield b"\0" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    request = small_limit_client.build_request(
        "POST",
        "/rasters",
        content=body(),
        headers={**ACTOR, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "content-length" not in request.headers
    r = small_limit_client.send(request)
    assert r.status_code == 413
    assert r.json()["code"] == "upload_too_large"
    assert "limit of 50000 bytes" in r.json()["detail"]
    assert "CADASTRE_RASTER_UPLOAD_MAX_BYTES" in r.json()["detail"]
    assert leftovers(raster_dir) == []
    assert small_limit_client.get("/rasters").json()["rasters"] == []
    assert small_limit_client.get("/survey/layers").json()["layers"] == []


def _streamed_upload(client: TestClient, chunks: int) -> Any:
    boundary = "xyzBOUNDARY"
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in FIELDS.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.tif"\r\n'
        "Content-Type: image/tiff\r\n\r\n"
    )

    def body() -> Iterator[bytes]:
        yield head.encode()
        for _ in range(chunks):
            yield b"\0" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**ACTOR, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    return client.post("/rasters", content=body(), headers=headers)


def _existing(client: TestClient, source: Path) -> Any:
    assert upload(client, source).status_code == 201
    return upload(client, source)


def _outside_pakistan(client: TestClient, source: Path) -> Any:
    return upload(client, write_raster(source.parent / "libya.tif", crs="EPSG:32633"))


def _not_a_raster(client: TestClient, source: Path) -> Any:
    bad = source.parent / "bad.tif"
    bad.write_text("not a raster")
    return upload(client, bad)


#: case: (send it, status, the upload limit in bytes)
REFUSED_UPLOADS: dict[str, tuple[Any, int, int]] = {
    "413 by Content-Length": (lambda c, s: upload(c, s), 413, 50_000),
    "413 streamed": (lambda c, s: _streamed_upload(c, 20), 413, 50_000),
    "422 not a raster": (_not_a_raster, 422, 1 << 30),
    "422 outside Pakistan": (_outside_pakistan, 422, 1 << 30),
    "422 bad field": (lambda c, s: upload(c, s, kind="astrology"), 422, 1 << 30),
    "409 existing slug": (_existing, 409, 1 << 30),
}


@pytest.mark.parametrize("case", list(REFUSED_UPLOADS))
def test_a_refused_upload_leaves_no_temporary_file(
    case: str,
    raster_settings: Settings,
    db: SavepointDatabase,
    source: Path,
    raster_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    send, status, limit = REFUSED_UPLOADS[case]
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    opened: list[str] = []
    open_file = Path.open

    def watched_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.parent == raster_dir:
            opened.append(self.name)
        return open_file(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", watched_open)
    settings = raster_settings.model_copy(update={"raster_upload_max_bytes": limit})
    with TestClient(create_app(settings, db=db), headers=ADMIN) as c:
        r = send(c, source)
        assert r.status_code == status, r.text
        kept = [e["raster"]["path"] for e in c.get("/rasters").json()["rasters"]]
    # The upload was streamed to a temporary file of the raster folder, and it is gone.
    assert any(name.startswith(".upload-") for name in opened)
    assert leftovers(raster_dir) == sorted(kept)
    assert len(kept) == (1 if case.startswith("409") else 0)
    assert sorted(p.name for p in temp.iterdir()) == []


def test_openapi_documents_the_raster_routes(rclient: TestClient) -> None:
    spec = rclient.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/rasters",
        "/rasters/{slug}",
        "/rasters/{slug}/tiles/{z}/{x}/{y}.png",
        "/rasters/{slug}/point",
        "/rasters/{slug}/statistics",
        "/rasters/{slug}/clip",
    ):
        assert path in paths
    assert "multipart/form-data" in paths["/rasters"]["post"]["requestBody"]["content"]
    assert paths["/rasters/{slug}/statistics"]["post"]["description"]


def test_colormap_names(rclient: TestClient) -> None:
    names = rclient.get("/rasters/colormaps").json()["colormaps"]
    assert {"viridis", "magma", "terrain", "rdbu"} <= set(names)


def test_a_lost_file_is_503_not_500(
    rclient: TestClient, imported: dict[str, Any], raster_dir: Path
) -> None:
    (raster_dir / imported["raster"]["path"]).unlink()
    for r in (
        rclient.get("/rasters/magtest/tiles/10/689/425.png"),
        rclient.get("/rasters/magtest/point", params={"lon": 62.0, "lat": 29.2}),
    ):
        assert r.status_code == 503
        assert r.json()["code"] == "raster_unavailable"
        assert r.headers["retry-after"]
