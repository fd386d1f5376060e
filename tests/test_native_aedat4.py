"""The AEDAT4 packet kernels equal, bit for bit, the numpy decoder they replaced
(tests/aedat4_reference.py) on packets dv-processing wrote and on LZ4 frames of every kind
the lz4 library writes; the reader built on them reads what dv-processing reads, keeps its
time checks, and refuses bad packets and bad arguments with a Python exception."""

from __future__ import annotations

import struct

import lz4.frame
import numpy as np
import pytest

from akida_rt.errors import EventFileError
from akida_rt.native import _kernels
from akida_rt.stream.aedat4_file import Aedat4File
from akida_rt.stream.events import EVENT_DTYPE, OnError, TimeGuard, make_events
from akida_rt.stream.readers import read_events
from tests import aedat4_reference as ref
from tests.dv_oracle import dv_batches, dv_events, write_aedat4

W, H = 640, 480
KIND = {"NONE": 0, "LZ4": 1, "LZ4_HIGH": 2}


def events(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 5 * n, n))
    return make_events(t, rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n))


def packets(path) -> list[bytes]:
    """The packets of an AEDAT4 file, as stored (compressed), up to its data table."""
    with Aedat4File(path) as f:
        pos, end = f.data_start, f.data_table
    data, out = path.read_bytes(), []
    while pos < end:
        size = struct.unpack_from("<i", data, pos + 4)[0]
        out.append(data[pos + 8 : pos + 8 + size])
        pos += 8 + size
    return out


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal events, padding included (the kernels write it as zero)."""
    return a.dtype == b.dtype == EVENT_DTYPE and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("compression", ["LZ4", "LZ4_HIGH", "NONE"])
def test_dv_packets_equal_the_numpy_decoder_and_dv(tmp_path, compression):
    ev = events(30_000, seed=len(compression))
    path = tmp_path / "dv.aedat4"
    write_aedat4(path, ev, W, H, packet=7_000, compression=compression)
    packed = compression != "NONE"
    stored = packets(path)
    ours = [ref.kernel_packet_events(p, packed) for p in stored]
    want = [ref.numpy_packet_events(p, packed) for p in stored]
    assert len(ours) == 5 and all(same(a, b) for a, b in zip(ours, want, strict=True))
    theirs = dv_batches(path)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
    # the builders the fuzzer uses lay packets out as dv-processing does
    raw = lz4.frame.decompress(stored[0]) if packed else stored[0]
    assert ref.event_packet(ref.dv_bytes(ev[:7000])) == raw
    assert np.array_equal(read_events(path), np.concatenate(theirs))


def test_zstd_recordings_equal_dv_processing(tmp_path):
    """Zstd packets (inflated by zstandard, then the same kernels) as dv-processing reads
    them."""
    pytest.importorskip("zstandard")
    ev = events(20_000, seed=9)
    for compression in ("ZSTD", "ZSTD_HIGH"):
        path = tmp_path / f"{compression}.aedat4"
        write_aedat4(path, ev, W, H, packet=3000, compression=compression)
        got = read_events(path)
        assert np.array_equal(got, ev) and np.array_equal(got, dv_events(path))


@pytest.mark.parametrize("block_size", [4, 5, 6, 7])
def test_lz4_frames_of_every_kind(block_size):
    """Linked and independent blocks, stored (incompressible) blocks, block and content
    checksums, a stated content size, fast and HC levels: the same events as lz4's decoder."""
    rng = np.random.default_rng(block_size)
    ev = events(20_000, seed=block_size)
    noise = rng.bytes(16 * 3000)  # random events: lz4 stores such blocks uncompressed
    runs = b"".join(bytes(int(rng.integers(1, 60))) + rng.bytes(int(rng.integers(1, 8))) * 9
                    for _ in range(2000))  # fmt: skip
    runs = runs[: len(runs) // 16 * 16]  # matches 1 to 7 bytes back
    for linked in (True, False):
        for sums in (False, True):
            for data in (ref.dv_bytes(ev), noise, runs):
                options = dict(block_size=block_size, block_linked=linked,
                               content_checksum=sums, block_checksum=sums, store_size=sums,
                               compression_level=int(rng.choice([0, 3, 9])))  # fmt: skip
                frame = lz4.frame.compress(ref.event_packet(data), **options)
                got = ref.kernel_packet_events(frame, True)
                assert same(got, ref.numpy_packet_events(frame, True)), options


def test_mutated_packets_decode_as_lz4_does_or_are_refused():
    """Flipped bits, replaced bytes and cuts: where lz4's decoder and the reference walk
    accept the packet, the kernels give the same events; a ValueError otherwise."""
    rng = np.random.default_rng(7)
    base = [ref.lz4_packet(events(2000, s), block_size=4, block_checksum=bool(s % 2),
                           content_checksum=bool(s % 3)) for s in range(4)]  # fmt: skip
    agreed = refused = 0
    for _ in range(300):
        data = bytearray(base[int(rng.integers(0, len(base)))])
        for _ in range(int(rng.integers(1, 6))):
            i = int(rng.integers(0, len(data)))
            data[i] = data[i] ^ (1 << int(rng.integers(0, 8))) if rng.random() < 0.7 else 0xFF
        if rng.random() < 0.2:
            data = data[: int(rng.integers(0, len(data)))]
        try:
            want = ref.numpy_packet_events(bytes(data), True)
        except Exception:
            want = None
        try:
            got = ref.kernel_packet_events(bytes(data), True)
        except ValueError:
            refused += 1
            continue
        if want is not None:
            assert same(got, want)
            agreed += 1
    assert agreed > 10 and refused > 10


def test_time_that_goes_back_is_found_as_the_guard_finds_it(tmp_path):
    """Packets whose times go back: raised at the event the TimeGuard names, or dropped as
    it drops them, whatever the chunk size."""
    ev = events(20_000, seed=3)
    ev["t"][[500, 9000, 9001, 15000]] = [0, 7, 3, ev["t"][14000]]
    chunks = [ev[i : i + 4000] for i in range(0, len(ev), 4000)]
    path = tmp_path / "back.aedat4"
    path.write_bytes(ref.aedat4_file([ref.lz4_packet(c) for c in chunks], W, H, 1))
    guard = TimeGuard(str(path), OnError.SKIP)
    want = np.concatenate([guard.check(c, 0) for c in chunks])
    for chunk_events in (1, 999, 4000, 1 << 16):
        with Aedat4File(path, chunk_events=chunk_events, on_error="skip") as f:
            assert np.array_equal(np.concatenate(list(f.chunks())), want)
    with pytest.raises(EventFileError) as raised:
        TimeGuard(str(path), OnError.RAISE).check(ev, 0)
    with pytest.raises(EventFileError) as got:
        read_events(path)
    assert str(got.value) == str(raised.value)


def test_bad_packets_name_their_offset_and_skip_keeps_the_rest(tmp_path):
    parts = [events(1000, s) for s in range(3)]
    for s, part in enumerate(parts):
        part["t"] += s * 10**6
    good = [ref.lz4_packet(part) for part in parts]
    bad = bytearray(good[1])
    bad[40:104] = b"\xff" * 64  # hung dv-processing's reader (tests/dv_oracle.py)
    path = tmp_path / "bad.aedat4"
    path.write_bytes(ref.aedat4_file([good[0], bytes(bad), good[2]], W, H, 1))
    second = path.read_bytes().index(bytes(bad)) - 8
    with pytest.raises(EventFileError, match=rf"bad.aedat4: at {second}: the packet at byte "):
        read_events(path)
    kept = read_events(path, on_error="skip")
    assert np.array_equal(kept, np.concatenate([parts[0], parts[2]]))


@pytest.mark.parametrize("compression", [0, 1])
def test_other_streams_and_packets_larger_than_a_read(tmp_path, compression):
    """Packets of another stream (one of 2 MiB) are skipped; a packet larger than the
    reader's 1 MiB reads is read whole; the same events in chunks of any size."""
    rng = np.random.default_rng(compression)
    parts = [events(n, seed=i) for i, n in enumerate([3000, 70_000, 500, 2000])]
    for i, part in enumerate(parts):
        part["t"] += i * 10**6
    pack = ref.lz4_packet if compression else lambda ev: ref.event_packet(ref.dv_bytes(ev))
    ours = [pack(part) for part in parts]
    header = ref.io_header(W, H, compression)
    out = [ref.MAGIC, struct.pack("<i", len(header)), header]
    for i, data in enumerate(ours):
        other = rng.bytes(2 << 20 if i == 1 else int(rng.integers(0, 5000)))
        out += [struct.pack("<ii", 1, len(other)), other, struct.pack("<ii", 0, len(data)), data]
    path = tmp_path / "two.aedat4"
    path.write_bytes(b"".join(out))
    want = np.concatenate(parts)
    for chunk_events in (1000, 1 << 16):
        with Aedat4File(path, chunk_events=chunk_events) as f:
            got = list(f.chunks())
        assert np.array_equal(np.concatenate(got), want)
        assert [len(c) for c in got[:-1]] == [chunk_events] * (len(got) - 1)


def test_bad_arguments_are_refused_not_read():
    frame = ref.lz4_packet(events(100))
    scratch, out = np.empty(1 << 20, np.uint8), np.empty(10, EVENT_DTYPE)
    readonly = np.empty(10, EVENT_DTYPE)
    readonly.flags.writeable = False
    raw = np.zeros(160, np.uint8)
    cases = [
        (_kernels.aedat4_unpack, (frame, True, bytes(1 << 20))),  # scratch read-only
        (_kernels.aedat4_unpack, ("frame", True, scratch)),
        (_kernels.aedat4_unpack, (frame, True, np.empty(100, np.uint8))),  # too small
        (_kernels.aedat4_unpack, (frame[:-4], True, scratch)),  # no end mark
        (_kernels.aedat4_unpack, (frame[:4] + bytes([frame[4] | 2]) + frame[5:], True, scratch)),
        (_kernels.aedat4_unpack, (struct.pack("<I", 1 << 30) + frame[4:], False, scratch)),
        (_kernels.aedat4_events, (raw, 0, 11, out, 0, 0)),  # past the source
        (_kernels.aedat4_events, (raw, 16, 10, out, 0, 0)),
        (_kernels.aedat4_events, (raw, -1, 1, out, 0, 0)),
        (_kernels.aedat4_events, (raw, 0, 10, out, 1, 0)),  # past the output
        (_kernels.aedat4_events, (raw, 0, -1, out, 0, 0)),
        (_kernels.aedat4_events, (raw, 0, 10, readonly, 0, 0)),
        (_kernels.aedat4_events, (raw, 0, 10, np.empty(10, np.int64), 0, 0)),
        (_kernels.aedat4_events, (raw, 0, 10, out[::2], 0, 0)),
        (_kernels.aedat4_walk, (raw, 0, 161, 0, 1, scratch, out, 0, 0)),  # past the buffer
        (_kernels.aedat4_walk, (raw, 9, 8, 0, 1, scratch, out, 0, 0)),
        (_kernels.aedat4_walk, (raw, -1, 8, 0, 1, scratch, out, 0, 0)),
        (_kernels.aedat4_walk, (raw, 0, 160, 0, 1, scratch, out, 11, 0)),
        (_kernels.aedat4_walk, (raw, 0, 160, 0, 1, scratch, readonly, 0, 0)),
    ]
    for fn, args in cases:
        with pytest.raises((TypeError, ValueError, BufferError)):
            fn(*args)
    with pytest.raises(ValueError, match="more than 1 MiB"):
        _kernels.aedat4_unpack(lz4.frame.compress(bytes(2 << 20)), True, scratch)


def test_a_zstd_bomb_stating_its_size_is_refused_not_inflated(tmp_path):
    """A Zstd packet of a few KiB stating 200 MiB of content: zstandard would allocate the
    stated size whatever max_output_size says, so the reader refuses it first."""
    zstandard = pytest.importorskip("zstandard")

    path = tmp_path / "zstd.aedat4"
    write_aedat4(path, events(6000, seed=3), W, H, packet=3000, compression="ZSTD")
    data = path.read_bytes()
    with Aedat4File(path) as f:
        start, sid = f.data_start, f.stream_id
    bomb = zstandard.ZstdCompressor(write_content_size=True).compress(bytes(200 << 20))
    assert len(bomb) < 64 << 10
    packet = sid.to_bytes(4, "little", signed=True) + len(bomb).to_bytes(4, "little") + bomb
    (tmp_path / "bomb.aedat4").write_bytes(data[:start] + packet)
    with pytest.raises(EventFileError, match=rf"at {start}:.*more than 64 MiB"):
        read_events(tmp_path / "bomb.aedat4")
