"""The host link of a simulated AKD1000 board: what a request costs in host-visible time.

A board's fps is the host's wall clock over the whole call, not the NP clocks: every
request pays the host runtime and driver, every frame a DMA handshake, every transfer
its chunks over the link's bandwidth. docs/clock-and-power-model.md gives the sources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkModel:
    """Host-visible costs of one board's link and host stack (seconds, bytes).

    Attributes:
        name: "pcie" or "usb".
        bytes_per_s: sustained bulk bandwidth of the link.
        chunk_bytes: bytes per DMA descriptor (akida_dw_edma: 1 KiB; USB: 16 KiB).
        chunk_s: descriptor setup and completion interrupt of one chunk.
        register_s: one register access (a PCIe MMIO read; a USB control transfer).
        command_s: the firmware picking a mailbox command up and answering it.
        request_s: per inference request (one RUN): the host runtime and driver around it
            (fitted; see the docs).
        frame_s: per frame of a request: the frame's input/output DMA set up by the host
            and its completion interrupt serviced (fitted; see the docs).
        host_macs_per_s: the board's host computing a software sequence (a layer the
            mapper leaves to the host engine), in multiply-accumulates per second.
    """

    name: str
    bytes_per_s: float
    chunk_bytes: int
    chunk_s: float
    register_s: float
    command_s: float
    request_s: float
    frame_s: float
    host_macs_per_s: float = 3.86e10

    def bulk_s(self, nbytes: int) -> float:
        """Moving `nbytes` between host and device memory."""
        if nbytes <= 0:
            return 0.0
        return math.ceil(nbytes / self.chunk_bytes) * self.chunk_s + nbytes / self.bytes_per_s


# Request and frame costs are fitted (DS-CNN's 62.50 fps on one frame and the KTH thesis's
# 1.622 ms per MNIST frame); bandwidths and chunk costs are the links' published figures.
# The host's software rate is fitted with them: GXNOR's software conv_1 (10.0 M MACs per
# frame) at the 0.26 ms that the 1.622 ms split leaves it (3.86e10 MAC/s).
PCIE = LinkModel(
    name="pcie",
    bytes_per_s=400e6,  # PCIe 2.0 x1: 500 MB/s after 8b/10b, ~80% of it after TLP headers
    chunk_bytes=1024,  # akida_dw_edma moves pread/pwrite in 1 KiB DMA chunks
    chunk_s=2e-6,
    register_s=1e-6,
    command_s=20e-6,
    request_s=14.15e-3,
    frame_s=0.436e-3,
)
USB = LinkModel(
    name="usb",
    bytes_per_s=35e6,  # USB 2.0 high-speed bulk, sustained
    chunk_bytes=16384,  # one DMA setup control transfer per 16 KiB bulk chunk
    chunk_s=250e-6,  # the setup control transfer: two microframes
    register_s=250e-6,  # a vendor control transfer
    command_s=20e-6,
    request_s=14.15e-3,
    frame_s=0.436e-3,
)
