"""The optional Prometheus endpoint: `GET /metrics` over HTTP/1.0 on a loopback port."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .metrics import prometheus_text

log = logging.getLogger(__name__)


async def serve_metrics(listen: str, controller: Any) -> asyncio.Server | None:
    """Serve `controller.stats(None)` (every client) as Prometheus text at `listen` ("host:port"); None if off."""
    if not listen:
        return None
    host, _, port = listen.rpartition(":")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)).strip():
                pass
            parts = line.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/metrics":
                body = prometheus_text(await controller.stats(None)).encode()
                head = "200 OK\r\nContent-Type: text/plain; version=0.0.4"
            else:
                body, head = (
                    b"not found; try /metrics\n",
                    "404 Not Found\r\nContent-Type: text/plain",
                )
            writer.write(f"HTTP/1.0 {head}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host or "127.0.0.1", int(port))
    bound = server.sockets[0].getsockname()
    log.info("Prometheus metrics at http://%s:%d/metrics", bound[0], bound[1])
    return server
