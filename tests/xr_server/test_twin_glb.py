"""``GET /api/cells/<cell>/twin.glb``: the static twin behind the auth wall, with a strong ETag."""

import pytest

from content.cell import Pose, Zone
from content.twin_asset import TwinAssetCache, read_glb_json
from tests.xr_server.doubles import SECRET, TWIN, FakeCameraViews
from xr_server.app import create_app

TOY_URDF = """<?xml version="1.0"?>
<robot name="toy">
  <link name="base"><visual><geometry><box size="0.2 0.3 0.1"/></geometry></visual></link>
  <link name="arm"><visual><geometry><cylinder radius="0.05" length="0.5"/></geometry></visual></link>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="arm"/>
    <origin xyz="0 0 0.05"/><axis xyz="0 1 0"/><limit lower="-1" upper="1" effort="1" velocity="1"/></joint>
</robot>
"""


@pytest.fixture
def served(make_store, tmp_path):
    urdf = tmp_path / "toy.urdf"
    urdf.write_text(TOY_URDF)
    zones = [Zone(name="bench", kind="warning", footprint=[(0, 0), (1, 0), (0, 1)], z_range_m=(0, 1))]
    cache = TwinAssetCache()
    app, _ = create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(),
                        user_store=make_store(ana=("s3cret", ["worker"])), secret_key=SECRET, cell_name="lab",
                        twin_asset=lambda: cache.get(urdf, Pose(position=(1.0, 0.0, 0.0)), zones))
    client = app.test_client()
    yield app, client, cache, urdf
    app.xrcell_stop()


def _login(client):
    assert client.post("/api/login", json={"username": "ana", "password": "s3cret"}).status_code == 200


def test_the_twin_glb_needs_a_token(served):
    _, client, cache, _ = served
    response = client.get("/api/cells/lab/twin.glb")
    assert response.status_code == 401 and response.get_json() == {"error": "missing token"}
    assert cache.builds == 0


def test_the_twin_glb_is_served_once_built_with_an_etag_and_304(served):
    _, client, cache, _ = served
    _login(client)
    response = client.get("/api/cells/lab/twin.glb")
    assert response.status_code == 200
    assert response.mimetype == "model/gltf-binary"
    gltf = read_glb_json(response.data)
    assert {"base", "arm", "zone/bench"} <= {n["name"] for n in gltf["nodes"]}
    etag = response.headers["ETag"]
    assert etag.startswith('"') and len(etag) == 66  # a strong ETag: the content hash
    assert response.headers["Cache-Control"] == "private, no-cache"
    again = client.get("/api/cells/lab/twin.glb", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    stale = client.get("/api/cells/lab/twin.glb", headers={"If-None-Match": '"0000"'})
    assert stale.status_code == 200 and stale.data == response.data
    assert cache.builds == 1


def test_another_cell_is_404_naming_it(served):
    _, client, _, _ = served
    _login(client)
    response = client.get("/api/cells/paint-shop/twin.glb")
    assert response.status_code == 404
    assert response.get_json() == {"error": "unknown cell 'paint-shop': this server shows 'lab'"}


def test_a_twin_that_cannot_be_built_is_503_with_the_reason(served):
    _, client, _, urdf = served
    urdf.write_text(TOY_URDF.replace('<box size="0.2 0.3 0.1"/>', '<mesh filename="meshes/base.stl"/>'))
    _login(client)
    response = client.get("/api/cells/lab/twin.glb")
    assert response.status_code == 503
    assert response.get_json()["error"].startswith(
        "static twin unavailable: cannot read mesh")


def test_without_a_twin_asset_the_route_is_503(make_store):
    app, _ = create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(),
                        user_store=make_store(ana=("s3cret", ["worker"])), secret_key=SECRET, cell_name="lab")
    client = app.test_client()
    _login(client)
    response = client.get("/api/cells/lab/twin.glb")
    assert response.status_code == 503 and response.get_json() == {"error": "this server has no static twin"}
    app.xrcell_stop()
