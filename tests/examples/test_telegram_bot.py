"""The Telegram bot example against a small fake Bot API on 127.0.0.1 (no network beyond it).

The fake serves the few Bot API methods the bot uses (``getMe``, ``deleteWebhook``, ``getUpdates`` with
long polling, ``sendMessage``); python-telegram-bot reaches it through its ``base_url``. The test queues
one update per command and two text messages, runs the bot's real polling loop, and checks each reply.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

import neurograph as ng

pytest.importorskip("telegram", reason="the example needs python-telegram-bot (the dev extra installs it)")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "telegram_bot.py"
TOKEN = "123456:TEST-token-for-a-fake-server"
BOT = {"id": 42, "is_bot": True, "first_name": "neurograph", "username": "neurograph_test_bot"}
USER = {"id": 99, "is_bot": False, "first_name": "Ada"}
CHAT = {"id": 7, "type": "private"}


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("telegram_bot_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeBotAPI:
    """A Bot API server on 127.0.0.1: queued updates out, sent messages in."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                kind = self.headers.get("Content-Type", "")
                params: dict[str, Any] = {}
                if "json" in kind and body:
                    params = json.loads(body)
                elif body:
                    for key, values in parse_qs(body).items():
                        try:
                            params[key] = json.loads(values[0])
                        except json.JSONDecodeError:
                            params[key] = values[0]
                method = self.path.rsplit("/", 1)[-1]
                result = api.answer(self.path, method, params)
                data = json.dumps(result).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if not path.startswith(f"/bot{TOKEN}/"):
            return {"ok": False, "error_code": 401, "description": "Unauthorized"}
        with self.lock:
            self.calls.append(method)
        if method == "getMe":
            return {"ok": True, "result": BOT}
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                with self.lock:
                    ready = [u for u in self.updates if u["update_id"] >= offset]
                if ready:
                    return {"ok": True, "result": ready[:1]}  # one at a time: replies keep their order
                time.sleep(0.01)
            return {"ok": True, "result": []}
        if method == "sendMessage":
            with self.lock:
                self.sent.append(params)
                n = len(self.sent)
            message = {"message_id": 1000 + n, "date": int(time.time()), "chat": CHAT, "from": BOT}
            return {"ok": True, "result": {**message, "text": params.get("text", "")}}
        return {"ok": True, "result": True}

    def push(self, text: str) -> None:
        with self.lock:
            uid = len(self.updates) + 1
            message: dict[str, Any] = {
                "message_id": uid,
                "date": int(time.time()),
                "chat": CHAT,
                "from": USER,
                "text": text,
            }
            if text.startswith("/"):
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
            self.updates.append({"update_id": uid, "message": message})

    def __enter__(self) -> FakeBotAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def _run_bot(api: FakeBotAPI, engine: ng.Engine, messages: list[str]) -> list[str]:
    example = _load_example()
    app = example.build_application(TOKEN, engine=engine, base_url=f"http://127.0.0.1:{api.port}/bot")
    for text in messages:
        api.push(text)
    async with app:
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        await app.start()
        deadline = time.monotonic() + 60
        while len(api.sent) < len(messages) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await app.updater.stop()
        await app.stop()
    assert all(int(m["chat_id"]) == CHAT["id"] for m in api.sent)
    return [m["text"] for m in api.sent]


def test_the_bot_answers_each_command_and_message() -> None:
    engine = ng.Engine(seed=0)
    messages = ["/start", "it will rain tomorrow", "it will rain tomorrow", "/stats", "/core", "/test"]
    with FakeBotAPI() as api:
        replies = asyncio.run(_run_bot(api, engine, messages))
    assert len(replies) == len(messages), replies
    start, first, again, stats, core, test = replies
    assert "neurograph" in start and "/stats" in start
    assert "novelty: new to me" in first and "neighbours: 0" in first
    assert "novelty: familiar" in again and "neighbours: 1" in again
    assert "engine: 1 tokens" in stats and "3 signals" not in stats and "pipeline: 2 messages" in stats
    assert "CDNA default v1" in core and "cpu" in core
    assert "timings: total" in test and "core" in test
    assert api.calls.count("getMe") >= 1 and "getUpdates" in api.calls
    tok = engine.token(0)  # what the bot heard is kept with the token it made
    assert tok["payload"] == {"text": "it will rain tomorrow", "user_id": USER["id"], "chat_id": CHAT["id"]}
    engine.close()


def test_the_example_refuses_to_start_without_a_token(monkeypatch, capsys) -> None:
    monkeypatch.delenv("NEUROGRAPH_TELEGRAM_TOKEN", raising=False)
    assert _load_example().main([]) == 2
    assert "NEUROGRAPH_TELEGRAM_TOKEN" in capsys.readouterr().err
