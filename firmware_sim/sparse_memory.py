"""Sparse byte-addressed memory for the simulated AKD1000's DDR: only touched pages exist.

The chip's DDR spans 256 MiB (the kernel's reserved area, then the engine's scratch); a
dict of 64 KiB pages keeps a simulated board at the size of what the host really wrote.
"""

from __future__ import annotations

import numpy as np

PAGE_BITS = 16
PAGE_SIZE = 1 << PAGE_BITS


class SparseMemory:
    """`size` bytes at physical address `base`; untouched bytes read as zero.

    Callers check the range with `contains` first: read and write assume it holds.
    """

    def __init__(self, base: int, size: int) -> None:
        self.base = base
        self.size = size
        self._pages: dict[int, bytearray] = {}

    def contains(self, addr: int, n: int) -> bool:
        """True if [addr, addr + n) lies inside this memory."""
        return n >= 0 and self.base <= addr and addr + n <= self.base + self.size

    @property
    def resident_bytes(self) -> int:
        """Bytes of host RAM the pages take."""
        return len(self._pages) * PAGE_SIZE

    def clear(self) -> None:
        """Power-off: every byte reads zero again."""
        self._pages.clear()

    def read(self, addr: int, n: int) -> bytes:
        """The `n` bytes at `addr`."""
        out = bytearray(n)
        offset = addr - self.base
        done = 0
        while done < n:
            page, start = divmod(offset + done, PAGE_SIZE)
            take = min(n - done, PAGE_SIZE - start)
            data = self._pages.get(page)
            if data is not None:
                out[done : done + take] = data[start : start + take]
            done += take
        return bytes(out)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        """Store `data` at `addr`."""
        view = memoryview(data).cast("B")
        offset = addr - self.base
        done = 0
        while done < len(view):
            page, start = divmod(offset + done, PAGE_SIZE)
            take = min(len(view) - done, PAGE_SIZE - start)
            chunk = view[done : done + take]
            stored = self._pages.get(page)
            if stored is None:
                if not any(chunk):
                    done += take  # zeros into an untouched page: nothing to keep
                    continue
                stored = self._pages[page] = bytearray(PAGE_SIZE)
            stored[start : start + take] = chunk
            done += take

    def read_words(self, addr: int, count: int) -> np.ndarray:
        """`count` little-endian 32-bit words at `addr`, as uint32."""
        return np.frombuffer(self.read(addr, 4 * count), "<u4").astype(np.uint32)

    def write_words(self, addr: int, words: np.ndarray | list[int]) -> None:
        """Store 32-bit words at `addr`, little-endian."""
        self.write(addr, np.asarray(words, dtype="<u4").tobytes())
