"""The thin client of akidad: connection, requests and remote devices. May import:
wire and errors (daemon_devices.py also mapping.hardware); never engine, mapper,
learning or model.

`from akida_rt.client import Client` is the documented entry point (README).
"""

from akida_rt.client.client import Client, RemoteModel

__all__ = ["Client", "RemoteModel"]
