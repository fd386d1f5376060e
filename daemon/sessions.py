"""Who akidad serves: a connected client (what it owns, its unanswered jobs) and a
session (a program a client loaded), as plain data shared by the controller, the
learning operations and the server."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from akida_rt.format.proto import program_pb2 as pb

from .devices import ProgramKey
from .jobs import Job
from .metrics import Meter


@dataclass(eq=False)
class Client:
    """One connection: who is on the other end and what it owns."""

    client_id: int
    pid: int
    uid: int
    gid: int
    name: str = ""
    priority: int = 0
    connected: float = field(default_factory=time.time)
    sessions: set[int] = field(default_factory=set)
    jobs: set[Job] = field(default_factory=set)  # unanswered requests (kept by the jobs)
    queued_bytes: int = 0  # their inputs (kept by the jobs)
    meter: Meter = field(default_factory=Meter)


@dataclass(eq=False)
class Session:
    """A program loaded by a client; requests name it by id."""

    session_id: int
    client: Client
    key: ProgramKey
    program: bytes
    name: str
    input_shape: tuple[int, int, int]
    input_bits: int
    output_shape: tuple[int, ...]
    sequences: int
    pinned: str | None
    learning: pb.LearningConfig | None = None  # compiled for edge learning (daemon/learning.py)
