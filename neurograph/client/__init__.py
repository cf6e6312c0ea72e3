"""The Python client of the streamer: :class:`Client` (async, reconnecting, resuming its session).

Needs the ``server`` extra (``websockets``, ``orjson``, ``msgpack``, ``httpx``); see ``docs/server.md``.
"""

from neurograph.client.client import Client, ClientError

__all__ = ["Client", "ClientError"]
