"""Who may do what: sign-in, the write rules by role and province, and what each role sees.

Accounts are made inside each test's transaction (``credentials``); the register is
checked in the database after every refusal: a refused write leaves nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from api.app import create_app
from cadastre.db import accounts
from cadastre.errors import InvalidInput
from cadastre.settings import Settings
from tests.api.test_hostile import application, counts
from tests.conftest import Credentials, SavepointDatabase

TMS = morecantile.tms.get("WebMercatorQuad")
PUNJAB = {
    "type": "Polygon",
    "coordinates": [[[72.0, 31.0], [72.05, 31.0], [72.05, 31.05], [72.0, 31.05], [72.0, 31.0]]],
}
CONTACT = {"phone": "+92 300 0000000", "email": "owner@example.pk"}


def _app_client(settings: Settings, db: SavepointDatabase) -> TestClient:
    return TestClient(create_app(settings, db=db))


def refused(r: Any, status: int, rule: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["detail"], body
    if rule is not None:
        assert body["where"]["rule"] == rule, body
    return body


# ------------------------------------------------------------------ writes


def test_anonymous_writes_are_401_and_write_nothing(anon: TestClient, conn: Connection) -> None:
    before = counts(conn)
    r = anon.post("/licences", json=application())
    body = refused(r, 401)
    assert "sign in" in body["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    refused(anon.patch("/licences/1", json={"remarks": "x"}), 401)
    refused(anon.post("/licences/1/transitions", json={"action": "grant"}), 401)
    refused(anon.delete("/survey/layers/anything"), 401)
    # Signing in is checked before the body: a stranger learns nothing from a 422.
    refused(anon.post("/licences", json={}), 401)
    refused(anon.patch("/licences/1", json={"no_such_field": 1}), 401)
    assert counts(conn) == before


def test_an_officer_writes_only_their_province(
    anon: TestClient, credentials: Credentials, conn: Connection
) -> None:
    punjab = credentials("officer", "PK-PB")
    balochistan = credentials("officer", "PK-BA")
    before = counts(conn)
    # Declared province: refused before any work.
    r = anon.post("/licences", json=application(province="Balochistan"), headers=punjab)
    body = refused(r, 403, "officer_own_province")
    assert "Punjab" in body["detail"] and "Balochistan" in body["detail"]
    # Undeclared: the ground decides the province, and the refusal undoes everything.
    r = anon.post("/licences", json=application(), headers=punjab)
    refused(r, 403, "officer_own_province")
    assert counts(conn) == before
    # Their own province: accepted; its transitions are theirs too, not Punjab's.
    r = anon.post("/licences", json=application(), headers=balochistan)
    assert r.status_code == 201, r.text
    lid = r.json()["id"]
    after_create = counts(conn)
    grant = {"action": "grant", "expires_on": "2029-01-01"}
    refused(anon.post(f"/licences/{lid}/transitions", json=grant, headers=punjab), 403)
    refused(anon.patch(f"/licences/{lid}", json={"remarks": "x"}, headers=punjab), 403)
    assert counts(conn) == after_create
    r = anon.post(f"/licences/{lid}/transitions", json=grant, headers=balochistan)
    assert r.status_code == 200, r.text
    # The Punjab officer does write in Punjab.
    r = anon.post("/licences", json=application(PUNJAB), headers=punjab)
    assert r.status_code == 201, r.text
    assert r.json()["properties"]["province_code"] == "PK-PB"


@pytest.mark.parametrize("role", ["geologist"])
def test_other_roles_do_not_write_licences(
    anon: TestClient, credentials: Credentials, conn: Connection, role: str
) -> None:
    before = counts(conn)
    r = anon.post("/licences", json=application(), headers=credentials(role))
    refused(r, 403, "licence_writers")
    assert counts(conn) == before


def test_an_admin_writes_everywhere(anon: TestClient, credentials: Credentials) -> None:
    admin = credentials("admin")
    for geometry in (None, PUNJAB):
        r = anon.post("/licences", json=application(geometry), headers=admin)
        assert r.status_code == 201, r.text


# ---------------------------------------------------------------- sign-in


def _password_account(conn: Connection, name: str, role: str = "geologist") -> str:
    password = "correct horse battery staple"
    accounts.add_account(conn, name, role, password=password, created_by="tests")
    return password


def test_password_sign_in_gives_a_short_lived_token(
    anon: TestClient, conn: Connection, settings: Settings
) -> None:
    password = _password_account(conn, "geo.quetta")
    r = anon.post("/auth/token", data={"username": "geo.quetta", "password": password})
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == settings.token_minutes * 60
    me = anon.get("/auth/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json()["username"] == "geo.quetta" and me.json()["role"] == "geologist"
    assert anon.get("/auth/me").json()["role"] == "public"
    # The password is stored as an argon2id hash, never as itself.
    stored = conn.execute(
        text("SELECT password_hash FROM accounts WHERE username = 'geo.quetta'")
    ).scalar_one()
    assert stored.startswith("$argon2id$") and password not in stored


@pytest.mark.parametrize(
    ("username", "password"),
    [("geo.quetta", "wrong password!!"), ("nobody.here", "correct horse battery staple")],
)
def test_a_wrong_name_or_password_is_401_saying_no_more(
    anon: TestClient, conn: Connection, username: str, password: str
) -> None:
    _password_account(conn, "geo.quetta")
    r = anon.post("/auth/token", data={"username": username, "password": password})
    assert refused(r, 401)["detail"] == "wrong username or password"


def test_bad_tokens_are_401_naming_why(anon: TestClient, conn: Connection) -> None:
    _password_account(conn, "geo.quetta")
    secret = anon.app.state.secret  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    expired = jwt.encode(
        {"sub": "geo.quetta", "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)},
        secret,
        algorithm="HS256",
    )
    forged = jwt.encode(
        {"sub": "geo.quetta", "iat": now, "exp": now + timedelta(hours=1)},
        "another key, not the service's one!",
        algorithm="HS256",
    )
    cases = {expired: "expired", forged: "not valid", "garbage": "not valid"}
    for token, why in cases.items():
        r = anon.get("/licences", headers={"Authorization": f"Bearer {token}"})
        assert why in refused(r, 401)["detail"]


def test_disabled_accounts_and_revoked_keys_are_401(
    settings: Settings, db: SavepointDatabase, conn: Connection, credentials: Credentials
) -> None:
    headers = credentials("officer", "PK-BA", "officer.disabled")
    key_account = credentials("geologist", None, "geo.revoked")
    accounts.set_disabled(conn, "officer.disabled", True)
    prefix = key_account["X-API-Key"][:12]
    accounts.revoke_key(conn, prefix)
    with _app_client(settings, db) as c:
        assert "disabled" in refused(c.get("/auth/me", headers=headers), 401)["detail"]
        assert "revoked" in refused(c.get("/auth/me", headers=key_account), 401)["detail"]
        unknown = {"X-API-Key": "cad_" + "x" * 43}
        assert "unknown" in refused(c.get("/auth/me", headers=unknown), 401)["detail"]


def test_api_keys_are_stored_hashed(credentials: Credentials, conn: Connection) -> None:
    key = credentials("geologist")["X-API-Key"]
    rows = conn.execute(text("SELECT prefix, key_hash FROM api_keys")).all()
    assert all(key not in (p, h) for p, h in rows)
    assert any(key.startswith(p) for p, _ in rows)


@pytest.mark.parametrize("secret", ["", "secret", "short-key"])
@pytest.mark.parametrize("environment", ["production", "test"])
def test_the_service_refuses_to_start_without_a_real_secret(secret: str, environment: str) -> None:
    with pytest.raises(InvalidInput, match="CADASTRE_SECRET_KEY"):
        create_app(Settings(environment=environment, secret_key=secret))  # type: ignore[arg-type]


def test_development_mode_makes_up_a_key_for_the_process() -> None:
    app = create_app(Settings(environment="development", secret_key=""))
    assert len(app.state.secret) >= 32


# ----------------------------------------------------- what each role sees


def _held_back(client: TestClient) -> int:
    """An application in Balochistan held back from the public register, with a holder
    whose contact details are private."""
    body = application(remarks="internal: check the survey", published=False)
    body["properties"]["holder"] = {"name": "Held Back Co", "contact": CONTACT}
    r = client.post("/licences", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["properties"]["published"] is False
    return int(r.json()["id"])


def _sees(c: TestClient, lid: int, headers: dict[str, str] | None) -> dict[str, bool]:
    """Where licence ``lid`` shows for a caller: detail, history, lists, items, tiles, AOI."""
    t = TMS.tile(66.025, 28.025, 14)
    mvt = c.get(f"/tiles/licences/{t.z}/{t.x}/{t.y}.mvt", headers=headers)
    tile_ids = (
        {f["id"] for f in mapbox_vector_tile.decode(mvt.content)["licences"]["features"]}
        if mvt.status_code == 200
        else set()
    )
    low = TMS.tile(66.025, 28.025, 5)
    dense = c.get(f"/tiles/licences/5/{low.x}/{low.y}.mvt", headers=headers)
    counted = 0
    if dense.status_code == 200:
        decoded = mapbox_vector_tile.decode(dense.content)
        counted = sum(f["properties"]["n"] for f in decoded["licence_density"]["features"])
    aoi = c.post("/aoi/report", json={"bbox": [65.99, 27.99, 66.06, 28.06]}, headers=headers)
    candidate = application()
    del candidate["properties"]["holder"]  # a check names no holder
    # Received after the held-back application: it would rank behind it.
    candidate["properties"]["received_at"] = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    check = c.post("/overlaps/check", json=candidate, headers=headers)
    assert check.status_code == 200, check.text
    items = c.get("/collections/licences/items?limit=1000", headers=headers).json()
    return {
        "detail": c.get(f"/licences/{lid}", headers=headers).status_code == 200,
        "item": c.get(f"/collections/licences/items/{lid}", headers=headers).status_code == 200,
        "history": c.get(f"/licences/{lid}/history", headers=headers).status_code == 200,
        "list": lid in {f["id"] for f in c.get("/licences", headers=headers).json()["features"]},
        "search": bool(c.get("/licences?holder=Held Back", headers=headers).json()["features"]),
        "items": lid in {f["id"] for f in items["features"]},
        "tile": lid in tile_ids,
        "density": counted == 1,
        "aoi": lid in {x["id"] for x in aoi.json()["licences"]},
        "check": lid in {x["id"] for x in check.json()["conflicts"]},
    }


def test_unpublished_applications_are_seen_only_by_their_officers_and_admins(
    client: TestClient, anon: TestClient, credentials: Credentials
) -> None:
    lid = _held_back(client)
    everywhere = dict.fromkeys(_sees(anon, lid, None), True)
    nowhere = dict.fromkeys(everywhere, False)
    assert _sees(anon, lid, None) == nowhere
    assert _sees(anon, lid, credentials("geologist")) == nowhere
    assert _sees(anon, lid, credentials("officer", "PK-PB")) == nowhere
    assert _sees(anon, lid, credentials("officer", "PK-BA")) == everywhere
    assert _sees(anon, lid, credentials("admin")) == everywhere
    # Published, it is everyone's.
    r = client.patch(f"/licences/{lid}", json={"published": True})
    assert r.status_code == 200, r.text
    assert _sees(anon, lid, None) == everywhere


def test_granting_publishes_and_a_title_cannot_be_held_back(client: TestClient) -> None:
    lid = _held_back(client)
    r = client.post(
        f"/licences/{lid}/transitions", json={"action": "grant", "expires_on": "2029-01-01"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["published"] is True
    r = client.patch(f"/licences/{lid}", json={"published": False})
    assert refused(r, 409)["field"] == "published"


def test_each_role_sees_its_fields(
    client: TestClient, anon: TestClient, credentials: Credentials
) -> None:
    lid = _held_back(client)
    client.patch(f"/licences/{lid}", json={"published": True})

    def props(headers: dict[str, str] | None) -> dict[str, Any]:
        r = anon.get(f"/licences/{lid}", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["properties"]  # type: ignore[no-any-return]

    public = props(None)
    # The EITI public-register fields, with the holder and its beneficial owners.
    for name in ("licence_no", "licence_type", "minerals", "holder", "status", "province"):
        assert public[name]
    assert "beneficial_owners" in public["holder_details"]
    assert {"remarks", "submitted", "published"}.isdisjoint(public)
    assert "contact" not in public["holder_details"]
    geologist = props(credentials("geologist"))
    assert geologist["remarks"] == "internal: check the survey"
    assert geologist["submitted"]["crs"]
    assert "contact" not in geologist["holder_details"]
    assert "contact" not in props(credentials("officer", "PK-PB"))["holder_details"]
    assert props(credentials("officer", "PK-BA"))["holder_details"]["contact"] == CONTACT
    # The public history keeps the facts and drops notes and remarks.
    events = anon.get(f"/licences/{lid}/history").json()
    assert [e["action"] for e in events] == ["apply", "update"]
    assert all(e["note"] is None and "remarks" not in (e["after"] or {}) for e in events)


def test_answers_for_a_signed_in_caller_are_private_and_validated_apart(
    client: TestClient, anon: TestClient, credentials: Credentials
) -> None:
    _held_back(client)
    officer = credentials("officer", "PK-BA")
    public = anon.get("/licences")
    own = anon.get("/licences", headers=officer)
    assert public.headers["etag"] != own.headers["etag"]
    assert own.headers["cache-control"].startswith("private")
    assert not public.headers["cache-control"].startswith("private")
    for r in (public, own):
        assert "Authorization" in r.headers["vary"]
    # The public's ETag does not revalidate the officer's view, nor the other way round.
    r = anon.get("/licences", headers={**officer, "If-None-Match": public.headers["etag"]})
    assert r.status_code == 200
