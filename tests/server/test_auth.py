"""Auth and roles against a real uvicorn: the role x channel matrix for all five roles, who may emit,
JWTs (bad, expired, wrong role), API keys (salted hashes, constant-time compare), close 1008, anonymous
only on loopback and the refusal to bind elsewhere without a secret."""

from __future__ import annotations

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from neurograph.cli import main
from neurograph.errors import InvalidArgument
from neurograph.server import ROLES, ServerConfig, check_bind, make_token, new_api_key
from neurograph.server.auth import CHANNEL_ROLES
from tests.server.conftest import token
from tests.server.live import SECRET, Live, live
from tests.server.wsutil import open_ws, ws_url

CHANNELS = ("metrics", "signals", "actions", "logs", "status", "connections")
MATRIX = {  # DESIGN §9, written out: role -> channels it may subscribe to
    "admin": {"metrics", "status", "signals", "actions", "logs", "connections"},
    "developer": {"metrics", "status", "signals", "actions", "logs"},
    "bot": {"metrics", "status", "signals"},
    "viewer": {"metrics", "status"},
    "anonymous": {"metrics", "status"},
}


def credential(role: str) -> str | None:
    return None if role == "anonymous" else token(role)


def test_matrix_is_the_design() -> None:
    assert {r: {c for c in CHANNELS if r in CHANNEL_ROLES[c]} for r in ROLES} == MATRIX


@pytest.mark.parametrize("role", ROLES)
async def test_role_channel_matrix_and_emit(srv: Live, role: str) -> None:
    ws, hello = await open_ws(ws_url(srv.ws, token=credential(role)))
    async with ws:
        assert hello["role"] == role
        await ws.send({"type": "subscribe", "channels": list(CHANNELS)})
        sub = await ws.reply("subscribed")
        assert set(sub["channels"]) == MATRIX[role]
        assert set(sub["denied"]) == set(CHANNELS) - MATRIX[role]
        await ws.send({"type": "emit", "id": 1, "vector": [0.05] * 8})
        answer = await ws.reply("error" if role == "viewer" else "emitted")
        if role == "viewer":
            assert "may not emit" in answer["message"]
        await ws.send({"type": "broadcast", "channel": "status", "event_type": "a.b", "data": {}})
        assert (await ws.reply("broadcast_sent" if role == "admin" else "error"))["type"]


@pytest.mark.parametrize(
    "bad",
    [
        make_token("another-secret-" + "y" * 32, "eve", "admin"),  # wrong signature
        make_token(SECRET, "eve", "admin", ttl=-10),  # expired
        make_token(SECRET, "eve", "root"),  # not a role
        make_token(SECRET, "eve", "anonymous"),  # anonymous is not granted by a token
        "not.a.jwt",
        "ngk_deadbeef_nope",  # an API key nobody issued
    ],
    ids=["signature", "expired", "role", "anonymous-claim", "garbage", "unknown-key"],
)
async def test_bad_credentials_close_with_1008(srv: Live, bad: str) -> None:
    with pytest.raises(ConnectionClosed) as info:
        await open_ws(ws_url(srv.ws, token=bad))
    assert info.value.rcvd.code == 1008
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{srv.http}/api/v1/status", headers={"Authorization": f"Bearer {bad}"})
    assert r.status_code == 401 and r.json()["error"] == "AuthError"


async def test_jwt_in_the_authorization_header(srv: Live) -> None:
    headers = {"Authorization": f"Bearer {token('developer', 'dev-7')}"}
    ws, hello = await open_ws(srv.ws, additional_headers=headers)
    async with ws:
        assert (hello["user_id"], hello["role"]) == ("dev-7", "developer")


async def test_api_keys_are_hashed_and_checked() -> None:
    key, record = new_api_key("bot", "bot-9", iterations=1000)
    secret = key.split("_", 2)[2]  # the key's secret part may itself hold "_"
    assert key not in str(record) and secret not in str(record)
    assert set(record) == {"id", "role", "user_id", "salt", "hash", "iterations"}
    config = ServerConfig(api_keys=(record,), allow_anonymous=False)
    with live(config=config) as srv:
        ws, hello = await open_ws(ws_url(srv.ws, token=key))
        async with ws:
            assert (hello["user_id"], hello["role"]) == ("bot-9", "bot")
        ws, hello = await open_ws(srv.ws, additional_headers={"X-API-Key": key})  # header, cached check
        async with ws:
            assert hello["role"] == "bot"
        forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
        with pytest.raises(ConnectionClosed) as info:
            await open_ws(ws_url(srv.ws, token=forged))
        assert info.value.rcvd.code == 1008
        with pytest.raises(ConnectionClosed) as info:  # anonymous refused when the config says so
            await open_ws(srv.ws)
        assert info.value.rcvd.code == 1008
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{srv.http}/api/v1/status")).status_code == 401
            ok = await http.get(f"{srv.http}/api/v1/status", headers={"X-API-Key": key})
            assert ok.status_code == 200


async def test_anonymous_only_on_loopback() -> None:
    """A server configured for a public address lets no anonymous client in, even from loopback."""
    config = ServerConfig(host="0.0.0.0", jwt_secret=SECRET)  # the test still binds 127.0.0.1
    with live(config=config) as srv:
        with pytest.raises(ConnectionClosed) as info:
            await open_ws(srv.ws)
        assert info.value.rcvd.code == 1008
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{srv.http}/api/v1/emit", json={"vector": [0.0] * 8})
            assert r.status_code == 401
            r = await http.get(f"{srv.http}/health/live")  # probes need no credentials
            assert r.status_code == 200


def test_refuses_to_bind_elsewhere_without_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEUROGRAPH_JWT_SECRET", raising=False)
    check_bind(ServerConfig())  # loopback: fine
    check_bind(ServerConfig(host="::1"))
    with pytest.raises(InvalidArgument, match="host"):
        check_bind(ServerConfig(host="0.0.0.0"))
    with pytest.raises(InvalidArgument, match="host"):
        main(["serve", "--host", "0.0.0.0", "--port", "0"])
    check_bind(ServerConfig(host="0.0.0.0", jwt_secret=SECRET))
    monkeypatch.setenv("NEUROGRAPH_JWT_SECRET", SECRET)
    check_bind(ServerConfig(host="0.0.0.0"))  # the secret from the environment
    with pytest.raises(InvalidArgument, match="jwt_secret"):
        ServerConfig(jwt_secret="short")


async def test_rest_roles(srv: Live) -> None:
    async with httpx.AsyncClient(base_url=srv.http) as http:
        viewer = {"Authorization": f"Bearer {token('viewer')}"}
        r = await http.post("/api/v1/emit", json={"vector": [0.0] * 8}, headers=viewer)
        assert r.status_code == 403 and r.json()["error"] == "Forbidden"
        assert (await http.get("/api/v1/cdna", headers=viewer)).status_code == 200
        dev = {"Authorization": f"Bearer {token('developer')}"}
        r = await http.put("/api/v1/cdna", json={"learning_rate": 0.2}, headers=dev)
        assert r.status_code == 403
        admin = {"Authorization": f"Bearer {token('admin')}"}
        version = (await http.get("/api/v1/cdna", headers=admin)).json()["version"]
        r = await http.put("/api/v1/cdna", json={"learning_rate": 0.2}, headers=admin)
        assert r.status_code == 200 and r.json()["version"] == version + 1
        r = await http.put("/api/v1/cdna", json={"no_such_rule": 1}, headers=admin)
        assert r.status_code == 422 and r.json()["error"] == "InvalidCDNA" and r.json()["violations"]
