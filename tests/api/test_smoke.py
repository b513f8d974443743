from fastapi.testclient import TestClient

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[66.0, 29.0], [66.05, 29.0], [66.05, 29.05], [66.0, 29.05], [66.0, 29.0]]],
}


def test_create_and_read(client: TestClient) -> None:
    body = {
        "type": "Feature",
        "geometry": SQUARE,
        "properties": {
            "licence_type": "exploration_licence",
            "minerals": ["Copper"],
            "holder": "Test Co",
        },
    }
    r = client.post("/licences", json=body)
    assert r.status_code == 201, r.text
    feature = r.json()
    assert feature["properties"]["province_code"] == "PK-BA"
    r2 = client.get(f"/licences/{feature['id']}")
    assert r2.status_code == 200
    assert r2.json()["properties"]["licence_no"] == feature["properties"]["licence_no"]
