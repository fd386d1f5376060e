"""The optional Prometheus endpoint: `GET /metrics` over HTTP/1.0 on a loopback port."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .metrics import prometheus_text

log = logging.getLogger(__name__)
MAX_METRICS_CONNECTIONS = 16  # scrapers at once; more are closed at once
REQUEST_S = 5.0  # a scraper has this long to send its whole request


async def serve_metrics(listen: str, controller: Any) -> asyncio.Server | None:
    """Serve `controller.stats(None)` (every client) as Prometheus text at `listen` ("host:port"); None if off."""
    if not listen:
        return None
    host, _, port = listen.rpartition(":")

    reading: dict[asyncio.StreamWriter, None] = {}  # still sending their request, oldest first
    open_now = 0

    async def read_request(reader: asyncio.StreamReader) -> bytes:
        line = await reader.readline()
        while (await reader.readline()).strip():
            pass
        return line

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now
        if open_now >= MAX_METRICS_CONNECTIONS:  # slow clients cannot take every descriptor:
            if not reading:  # the slowest sender makes room, not the newcomer
                writer.transport.abort()
                return
            oldest = next(iter(reading))
            reading.pop(oldest)
            oldest.transport.abort()
        open_now += 1
        reading[writer] = None
        try:
            line = await asyncio.wait_for(read_request(reader), REQUEST_S)  # the whole request
            reading.pop(writer, None)
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
            await asyncio.wait_for(writer.drain(), REQUEST_S)
        except (TimeoutError, ConnectionError, UnicodeError, ValueError):
            pass  # ValueError: a header line over the reader's limit
        finally:
            reading.pop(writer, None)
            open_now -= 1
            writer.close()

    server = await asyncio.start_server(handle, host or "127.0.0.1", int(port))
    bound = server.sockets[0].getsockname()
    log.info("Prometheus metrics at http://%s:%d/metrics", bound[0], bound[1])
    return server
