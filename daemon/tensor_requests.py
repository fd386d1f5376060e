"""Inference and learn requests as tensor frames: a connection's decoding of them, its
sealed memfds within the uid's budget, and the answers its device workers send."""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Coroutine
from typing import Any

import numpy as np

from akida_rt.errors import AkidaError, DaemonError, ErrorKind
from akida_rt.wire import ipc
from akida_rt.wire import tensor_frames as tf
from akida_rt.wire.proto import daemon_pb2 as dpb

from .budgets import Budgets, Kind
from .config import Config
from .control_requests import as_json
from .controller import Client, Controller
from .jobs import Job, Result


class TensorRequests:
    """The tensor-frame side of a Connection (a base class of it)."""

    ctl: Controller
    client: Client
    config: Config
    budgets: Budgets
    uid: int
    lock: threading.Lock
    maps: dict[mmap.mmap, int]
    closed: bool

    def refuse(self, req_id: int, exc: BaseException) -> None:
        """Answer a request that failed (the Connection's)."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        """Send a whole frame (the Connection's)."""
        raise NotImplementedError

    def spawn(self, req_id: int, work: Coroutine[Any, Any, dpb.Response | bytes]) -> None:
        """Run a request that waits (the Connection's)."""
        raise NotImplementedError

    def on_infer(self, payload: bytes, fds: list[int]) -> None:
        if len(fds) != tf.uses_shm(payload):
            raise DaemonError(f"an infer frame takes {int(tf.uses_shm(payload))} descriptors "
                              f"(IN_SHM or OUTPUT_TO_SHM), {len(fds)} came with it")  # fmt: skip
        limit = self.config.max_tensor_bytes
        f = tf.decode_infer(payload, limit)
        x, shm = f.x, None
        if fds:  # the tensor, or room for its answer, is in the memfd
            need = ipc.shape_nbytes(f.shape, f.dtype, limit) if f.in_shm else 0
            if why := self.budgets.over(Kind.QUEUED, self.uid, need):  # before the copy
                raise DaemonError(f"{why}; read answers before sending more",
                                  ErrorKind.TOO_MANY_REQUESTS)  # fmt: skip
            shm = self.map(fds[0], need, limit)
        try:
            if shm is not None and f.in_shm:
                x = np.frombuffer(shm, f.dtype, need // f.dtype.itemsize).reshape(f.shape).copy()
            assert x is not None  # inline, or read from the memfd just now
            if shm is not None and not f.output_to_shm:  # the answer goes inline
                self.unmap(shm)
                shm = None
            out = shm
            self.ctl.infer(self.client, f.session, x, f.predict, f.timeout_ms,
                           lambda result, job: self.answer(f.id, out, result, job))  # fmt: skip
        except BaseException:
            if shm is not None:
                self.unmap(shm)
            raise

    def map(self, fd: int, need: int, limit: int) -> mmap.mmap:
        """Map a request's sealed memfd within the uid's memfd budget."""
        size = os.fstat(fd).st_size  # one over the limit: map_sealed says so, unmapped
        if size <= limit and (why := self.budgets.over(Kind.MEMFD, self.uid, size)):
            raise DaemonError(f"{why}; read answers before sending more",
                              ErrorKind.TOO_MANY_REQUESTS)  # fmt: skip
        shm = ipc.map_sealed(fd, need, limit)
        with self.lock:
            self.maps[shm] = len(shm)
        self.budgets.add(Kind.MEMFD, self.uid, len(shm))
        return shm

    def unmap(self, shm: mmap.mmap) -> None:
        """Unmap a request's memfd and give back its budget (any thread)."""
        with self.lock:
            size = self.maps.pop(shm, None)
            shm.close()
        if size is not None:
            self.budgets.sub(Kind.MEMFD, self.uid, size)

    def on_learn(self, payload: bytes, fds: list[int]) -> None:
        """A learn frame: fit its samples on the session's device (a control request that
        waits), answered with a learned tensor frame."""
        if fds:
            raise DaemonError(f"a learn frame takes no descriptors, {len(fds)} came with it")
        f = tf.decode_learn(payload, self.config.max_tensor_bytes)

        async def learn() -> bytes:
            pots, state = await self.ctl.learned.fit(
                self.client, f.session, f.x, f.labels, f.timeout_ms, f.update_id
            )
            return tf.encode_learned(f.id, pots, as_json(state))

        self.spawn(f.id, learn())

    def answer(self, req_id: int, shm: mmap.mmap | None, result: Result, job: Job) -> None:
        """Answer an inference (from the device's worker, or the loop at its deadline)."""
        in_shm = False
        if shm is not None:
            with self.lock:  # close() may unmap it meanwhile
                if not self.closed and isinstance(result, np.ndarray) and len(shm) >= result.nbytes:
                    np.frombuffer(shm, result.dtype, result.size)[:] = result.reshape(-1)
                    in_shm = True
            self.unmap(shm)
        if isinstance(result, AkidaError):
            self.refuse(req_id, result)
        else:
            self.write(tf.encode_result(req_id, result, job.device, job.batch_frames,
                                        job.queue_s, job.run_s, in_shm=in_shm))  # fmt: skip


def request_id(payload: bytes) -> int:
    """The request id of an infer frame whose header is whole, else 0."""
    return int(tf.INFER_HEAD.unpack_from(payload)[5]) if len(payload) >= tf.INFER_HEAD.size else 0
