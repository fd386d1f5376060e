"""USB vendor/product ids of Akida boards, and the layout of their vendor interface.

The udev rule (99-akida.rules) and discovery both follow this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UsbModel:
    """One USB board model."""

    vid: int
    pid: int
    model: str
    chip: str

    @property
    def vid_pid(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"


#: Every board we drive. The ids follow BrainChip's PCI ids (vendor 0x1e7c).
USB_MODELS: tuple[UsbModel, ...] = (
    UsbModel(0x1E7C, 0xBCA1, "AKD1000 USB", "AKD1000"),
    UsbModel(0x1E7C, 0xA500, "AKD1500 USB", "AKD1500"),
)
USB_IDS: dict[tuple[int, int], UsbModel] = {(m.vid, m.pid): m for m in USB_MODELS}


def lookup(vid: int, pid: int) -> UsbModel | None:
    """The model with this VID:PID, or None if it is not an Akida board."""
    return USB_IDS.get((vid, pid))


def parse_vid_pid(text: str) -> tuple[int, int]:
    """`"1e7c:bca1"` -> (0x1e7c, 0xbca1); raises ValueError on anything else."""
    vid, sep, pid = text.partition(":")
    if not sep or not vid or not pid:
        raise ValueError(f"expected VID:PID in hex, got {text!r}")
    return int(vid, 16), int(pid, 16)
