"""Wire formats of the transports, shared by the host driver and the simulated board.

The host side lives in `akida_rt.driver` and the device side in `akida_rt.firmware_sim`;
neither may import the other, so what both must agree on (USB requests and endpoints,
DMA chunk sizes, the console's line syntax) is defined here, as data.
"""

from __future__ import annotations

import struct

# --- PCIe (akida_dw_edma) -------------------------------------------------------------
#: The kernel driver moves pread/pwrite data by DMA in chunks of this many bytes.
PCIE_DMA_CHUNK = 1024

# --- USB vendor interface --------------------------------------------------------------
USB_INTERFACE = 0
USB_EP_OUT = 0x01  # bulk, host -> device memory
USB_EP_IN = 0x81  # bulk, device memory -> host
USB_MAX_PACKET = 512  # high speed bulk
#: Bytes one DMA request may move; larger reads and writes are split by the host.
USB_DMA_CHUNK = 16 * 1024

REQTYPE_VENDOR_OUT = 0x40  # host-to-device | vendor | device
REQTYPE_VENDOR_IN = 0xC0  # device-to-host | vendor | device
REQ_READ32 = 0x01  # IN, wValue = addr[15:0], wIndex = addr[31:16], 4 bytes LE
REQ_WRITE32 = 0x02  # OUT, same addressing, 4 bytes LE
REQ_DMA = 0x03  # OUT, payload DMA_SETUP; the data phase follows on the bulk endpoints
DMA_TO_DEVICE = 0
DMA_FROM_DEVICE = 1
DMA_SETUP = struct.Struct("<BxxxII")  # direction, address, length


def split_addr(addr: int) -> tuple[int, int]:
    """A 32-bit address as the (wValue, wIndex) of a register request."""
    return addr & 0xFFFF, (addr >> 16) & 0xFFFF


def join_addr(w_value: int, w_index: int) -> int:
    """The inverse of `split_addr`."""
    return (w_index & 0xFFFF) << 16 | (w_value & 0xFFFF)


# --- UART console (line protocol) ------------------------------------------------------
# host -> board:  "<command>\n"                 commands: identify, reset
# board -> host:  "log <LEVEL> <text>"          firmware log (forwarded to logging)
#                 "ok <command> k=v k=v ..."    reply
#                 "err <command> <text>"        failure
# Lines end with "\n"; a trailing "\r" is ignored. Any other line is firmware output and
# is logged as INFO.
CONSOLE_BAUD = 115200
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def format_reply(command: str, fields: dict[str, str]) -> str:
    """The `ok` line answering `command`."""
    body = " ".join(f"{k}={v}" for k, v in fields.items())
    return f"ok {command} {body}".rstrip() + "\n"


def parse_fields(text: str) -> dict[str, str]:
    """`"a=1 b=x"` -> {"a": "1", "b": "x"}; tokens without `=` are ignored."""
    out: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out
