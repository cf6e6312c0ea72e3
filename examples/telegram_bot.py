"""A Telegram bot over neurograph: every text message goes through a ``SignalPipeline``.

Run it with a bot token from @BotFather (never put one in code)::

    pip install -e '.[semantic]' python-telegram-bot
    NEUROGRAPH_TELEGRAM_TOKEN=123:abc python examples/telegram_bot.py [--store runs/telegram]

Each message becomes a signal (its text kept as the token's payload, with the user and chat ids); the
reply is the pipeline's text response plus whether the message was novel and how many neighbours it
had. Commands:

``/start``  what neurograph is
``/stats``  pipeline, engine and action figures
``/core``   engine and device information
``/test``   one pipeline run of a fixed sentence, with its timings

``build_application(token, engine=..., base_url=...)`` builds the python-telegram-bot ``Application``
without starting it; ``base_url`` points it at another Bot API server (the test serves a small fake one
on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Any

import torch
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

import neurograph as ng

TOKEN_ENV = "NEUROGRAPH_TELEGRAM_TOKEN"

START_TEXT = (
    "Hello! I am a neurograph bot. Every message you send becomes a signal in an 8-D semantic space: it "
    "is judged novel or familiar against the nearest tokens, and familiar ones strengthen what is "
    "there, so fields of related messages form over time.\n"
    "Commands: /stats (figures), /core (engine and device), /test (one pipeline run)."
)


def reply_text(out: dict[str, Any]) -> str:
    """The reply to one pipeline result: the text response, novelty and neighbour count."""
    responses = [
        a["result"]["response"]
        for a in out["action_results"]
        if isinstance(a.get("result"), dict) and "response" in a["result"]
    ]
    r = out["processing_result"]
    novelty = "new to me" if r["is_novel"] else "familiar"
    head = responses[0] if responses else "Received."
    return f"{head}\nnovelty: {novelty} (anomaly {r['anomaly_score']:.2f}), neighbours: {len(r['neighbors'])}"


class NeurographBot:
    """The handlers, over one engine and one pipeline."""

    def __init__(self, engine: ng.Engine) -> None:
        self.engine = engine
        self.pipeline = ng.SignalPipeline(engine)

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(START_TEXT)

    async def stats(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        p = self.pipeline.stats()
        e = await self.engine.call(self.engine.stats)
        a = self.pipeline.actions.stats()
        text = (
            f"pipeline: {int(p['messages'])} messages, {p['messages_per_s']:.0f} msg/s, "
            f"core {p['core_time_ms']:.1f} ms in all\n"
            f"engine: {e['tokens']} tokens, {e['edges']} edges, {e['signals']} signals, "
            f"novel rate {e['novel_rate']:.2f}\n"
            f"actions: {a['dispatched']} dispatched, {a['failed']} failed, {a['pending']} pending"
        )
        await update.effective_message.reply_text(text)

    async def core(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        e = await self.engine.call(self.engine.stats)
        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        text = (
            f"neurograph {ng.__version__} on {e['device']} (CUDA: {cuda}), torch {torch.__version__}, "
            f"Python {platform.python_version()}\n"
            f"CDNA {self.engine.cdna.name} v{e['cdna_version']} ({e['cdna_hash']}); "
            f"{e['tokens']} of {e['token_capacity']} token slots, {e['memory_bytes'] / 2**20:.1f} MiB"
        )
        await update.effective_message.reply_text(text)

    async def test(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat.id if update.effective_chat else None
        out = await self.pipeline.process_text("neurograph self test", user_id="selftest", chat_id=chat)
        s = out["stats"]
        text = (
            f"test: {reply_text(out)}\n"
            f"timings: total {s['total_time_ms']:.2f} ms (gateway {s['gateway_time_ms']:.2f}, "
            f"core {s['core_time_ms']:.2f}, actions {s['action_time_ms']:.2f})"
        )
        await update.effective_message.reply_text(text)

    async def message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        user = update.effective_user.id if update.effective_user else None
        chat = update.effective_chat.id if update.effective_chat else None
        out = await self.pipeline.process_text(msg.text, user_id=user, chat_id=chat)
        await msg.reply_text(reply_text(out))


def build_application(
    token: str, *, engine: ng.Engine | None = None, base_url: str | None = None
) -> Application:
    """The bot's ``Application`` (not started): handlers for the four commands and for text messages.

    Args:
        token: the bot token.
        engine: the engine messages go to (a new in-memory one by default).
        base_url: the Bot API's base URL (``https://api.telegram.org/bot`` by default).
    """
    builder = ApplicationBuilder().token(token)
    if base_url is not None:
        builder = builder.base_url(base_url).base_file_url(base_url.replace("/bot", "/file/bot"))
    app = builder.build()
    bot = NeurographBot(engine if engine is not None else ng.Engine(seed=0))
    app.bot_data["neurograph"] = bot
    app.add_handler(CommandHandler("start", bot.start))
    app.add_handler(CommandHandler("stats", bot.stats))
    app.add_handler(CommandHandler("core", bot.core))
    app.add_handler(CommandHandler("test", bot.test))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, bot.message))
    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A Telegram bot over neurograph")
    ap.add_argument("--store", help="a store directory (kept across restarts); in memory without it")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    token = os.environ.get(TOKEN_ENV)
    if not token:
        print(f"set {TOKEN_ENV} to the bot token from @BotFather", file=sys.stderr)
        return 2
    engine = ng.Engine(device=args.device, path=args.store)
    app = build_application(token, engine=engine)
    try:
        app.run_polling(allowed_updates=Update.ALL_TYPES)
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
