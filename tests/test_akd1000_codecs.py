"""The AKD1000 interface as data: registers, descriptors, events and config packets against
the facts measured from BrainChip's Akida Engine (shared reference) and real programs."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

import akida_rt.akd1000 as akd1000
from akida_rt.akd1000 import descriptors as d
from akida_rt.akd1000 import memory_map as mm
from akida_rt.akd1000 import registers as r
from akida_rt.akd1000.packets import (
    ConfigPacket,
    PacketType,
    encode_track,
    packet_header,
    parse_track,
)
from akida_rt.errors import ProgramFormatError


def test_memory_map_and_register_addresses() -> None:
    assert (mm.TOP_LEVEL_REG_BASE, mm.DDR_BASE, mm.SCRATCH_BASE) == (
        0xFCC00000,
        0x20000000,
        0x24000000,
    )
    assert mm.SCRATCH_SIZE == 192 << 20 and mm.CHUNK_SIZE == 1024
    assert mm.touches_edma_window(0x203FFFFC, 4) and mm.touches_edma_window(0x1FFFFFFC, 8)
    assert not mm.touches_edma_window(0x20400000, 4) and not mm.touches_edma_window(0x1FFFFFFC, 4)
    assert r.CONFIG_DMA.addr("BUF_MON_STATUS") == 0xFCC30028
    assert r.EVENT_DMA.addr("DESC_STATUS") == 0xFCC20010
    assert r.HRC_DMA.addr("CTRL") == 0xFCC28000
    assert r.INTERRUPTS.addr("SOURCE_MASK") == 0xFCC70004
    assert r.TOP.addr("MESH_INFO3") == 0xFCC00058 and r.fnp2_ddr_conf(2).offset == 0x18
    assert r.describe(0xFCC30024) == "config_dma.IB_BUF_MON_CTRL"
    assert r.describe(0xFCC4001C) == "epg+0x1c"


def test_register_fields_get_and_set() -> None:
    ctrl = r.CONFIG_DMA["CTRL"]
    assert ctrl.set(0, RUN=1, INT_EN=1) == (1 << 8) | (1 << 10)
    w = r.EVENT_DMA["DESC_STATUS"].set(0, JOB_ID=0xBEEF, DESC_VERSION=1)
    assert w == 0xBEEF0001 and r.EVENT_DMA["DESC_STATUS"].get(w, "JOB_ID") == 0xBEEF
    hdr = r.CONFIG_DMA["CTRL"].set(0, WR_INFO_EN=1, WR_INFO_HDR=1, WR_INFO_HDR_SZ=32)
    assert hdr == (1 << 24) | (1 << 25) | (32 << 26)
    with pytest.raises(ValueError):
        ctrl.set(0, VERSION=16)


def test_descriptors_layout_and_round_trip() -> None:
    cfg = d.ConfigDescriptor(True, 0x24001000, 50)
    assert list(cfg.encode()) == [0x10000001, 0x24001000, 50, 0, 0, 0, 0, 0]
    assert d.ConfigDescriptor.decode(cfg.encode()) == cfg
    ev = d.EventDescriptor(job_id=7, input_addr=0x24000100, words=20, output_addr=0x24002000,
                           learn_class=3)  # fmt: skip
    w = ev.encode()
    assert len(w) * 4 == 32 and w[0] >> 16 == 7 and w[0] & 0xF == 1 and w[0] >> 13 & 1 == 1
    assert w[4] >> 16 == 3 and d.EventDescriptor.decode(w) == ev
    hrc = d.HrcDescriptor.for_image(9, 0x24000000, 0x24100000, (28, 28, 1))
    w = hrc.encode()
    assert len(w) == 16 and w[2] == (28 << 16) | 28 and w[3] == 0 and w[7] == 0x24100000
    assert d.HrcDescriptor.decode(w) == hrc
    wide = d.HrcDescriptor.for_image(1, 0, 0, (2, 30000, 3))
    assert d.HrcDescriptor.decode(wide.encode()) == wide and wide.row_bytes == 90000


def test_output_header_and_events() -> None:
    assert d.decode_output_header(d.encode_output_header(12)[0]) == 12
    # FNP: feature w1[17:0]; signed 26-bit potential w2[25:0], polarity w2[31]
    w = d.encode_fnp_events(np.array([5, 0x3FFFF]), np.array([-3, 1000]))
    assert list(w[0]) == [5, 0x80000000 | ((1 << 26) - 3)]
    f, v = d.decode_fnp_events(w)
    assert list(f) == [5, 0x3FFFF] and list(v) == [-3, 1000]
    # CNP: x w1[11:0], y w1[27:16], feature w2[10:0], potential w2[31:12]
    w = d.encode_cnp_potentials(np.array([3]), np.array([4]), np.array([2]), np.array([-5]))
    assert list(w[0]) == [(4 << 16) | 3, (((1 << 20) - 5) << 12) | 2]
    assert [int(a[0]) for a in d.decode_cnp_potentials(w)] == [3, 4, 2, -5]
    w = d.encode_cnp_potentials(np.array([1]), np.array([1]), np.array([1]), np.array([-(1 << 22)]),
                                hrc=True)  # fmt: skip
    assert int(d.decode_cnp_potentials(w, hrc=True)[3][0]) == -(1 << 22)
    a = np.zeros((2, 3, 4), np.uint8)
    a[1, 2, 3] = 9
    x, y, f, v = d.decode_cnp_events(d.cnp_input_events(a))
    assert (int(x[0]), int(y[0]), int(f[0]), int(v[0])) == (1, 2, 3, 9)
    # no event at all: one dummy event just outside the shape (NSoC_v2 needs one)
    assert [int(c[0]) for c in d.decode_cnp_events(d.cnp_input_events(a * 0))] == [2, 3, 4, 1]


def test_packet_header_words() -> None:
    # column 3, row 1, NP 2, registers, 50 words from 0
    assert list(packet_header(3, 1, 2, PacketType.REGISTERS, 50)) == [0x03010408, 50 << 16]
    # the HRC: NP mask 0, HRC enable 0b10
    assert list(packet_header(0, 0, None, PacketType.REGISTERS, 1, start=4)) == [0x88, 0x10004]
    big = packet_header(1, 2, 0, PacketType.CNP_FILTER, 16 * 2000)
    assert big[1] == (1 << 31) | (2000 << 16)


def test_tracks_parse_whole_packets_and_refuse_bad_ones() -> None:
    p1 = ConfigPacket(1, 3, 0b0001, False, PacketType.REGISTERS, 0, np.arange(50, dtype=np.uint32))
    p2 = ConfigPacket(
        1, 3, 0b0001, False, PacketType.FNP_WEIGHTS, 0, np.ones(32, np.uint32), xl=True
    )
    words = encode_track([p1, p2])
    back = parse_track(words)
    assert len(back) == 2 and back[0].same(p1) and back[1].same(p2) and back[1].nps == (0,)
    assert np.array_equal(encode_track(back), words)
    with pytest.raises(ProgramFormatError, match=r"byte offset 1208 .*truncated"):
        parse_track(words[:-1], offset=1000)
    with pytest.raises(ProgramFormatError, match=r"byte offset 1344 .*overlong"):
        parse_track(np.concatenate([words, [7]]), offset=1000)


def test_akd1000_package_imports_only_numpy_flatbuffers_and_errors() -> None:
    allowed = {"numpy", "flatbuffers", "akida_rt.errors", "akida_rt.akd1000", "__future__"}
    for path in Path(akd1000.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                ok = top in sys.stdlib_module_names or any(
                    name == a or name.startswith(a + ".") for a in allowed
                )
                assert ok, f"{path.name} imports {name}"
