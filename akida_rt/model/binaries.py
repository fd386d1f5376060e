"""The AKD1000 program binaries a mapped Model holds: one per hardware sequence, valid for
one state of its plans and layers (akida_rt.mapping.akd1000_compiler makes them)."""

from __future__ import annotations

from typing import Any


class HeldBinaries:
    """Binaries with the key (plans and layer versions) they were made for."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._binaries: list[bytes | None] | None = None

    def get(self, key: tuple[Any, ...]) -> list[bytes | None] | None:
        """The binaries made for `key`, or None."""
        if self._binaries is None or self._key != key:
            return None
        return list(self._binaries)

    def hold(self, key: tuple[Any, ...], binaries: list[bytes | None]) -> None:
        self._key, self._binaries = key, list(binaries)

    def clear(self) -> None:
        self._key = self._binaries = None

    def adopt(self, key: tuple[Any, ...], index: int, binary: bytes) -> None:
        """Sequence `index`'s binary became `binary` (learned on the chip), now valid for
        `key`; nothing when no binaries are held."""
        if self._binaries is not None:
            binaries = list(self._binaries)
            binaries[index] = binary
            self.hold(key, binaries)
