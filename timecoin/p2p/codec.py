"""A :class:`~timecoin.ledger.encoding.Reader` over a slice of a received buffer.

Frames are decoded where they lie in the bytes read from the socket: the
reader keeps a start and end offset instead of copying the frame out first.
It enforces the same bounds, raises the same :class:`DecodeError` messages
and returns ``bytes`` fields, so every codec works with it unchanged.
"""

import struct

from timecoin.ledger.encoding import DecodeError, Reader

_U8 = struct.Struct("<B").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from


class SliceReader(Reader):
    """Reads ``data[start:end]`` (``data`` is ``bytes``) in place."""

    __slots__ = ("_end",)

    def __init__(self, data, start=0, end=None):
        self._data = data
        self._pos = start
        self._end = len(data) if end is None else end

    def _take(self, n, what):
        pos = self._pos
        end = pos + n
        if end > self._end:
            raise DecodeError(f"truncated: {what} needs {n} bytes")
        self._pos = end
        return self._data[pos:end]

    def _at(self, n, what):
        pos = self._pos
        if pos + n > self._end:
            raise DecodeError(f"truncated: {what} needs {n} bytes")
        self._pos = pos + n
        return pos

    def u8(self, what="u8"):
        return _U8(self._data, self._at(1, what))[0]

    def u16(self, what="u16"):
        pos = self._pos
        if pos + 2 > self._end:
            raise DecodeError(f"truncated: {what} needs 2 bytes")
        self._pos = pos + 2
        return _U16(self._data, pos)[0]

    def u32(self, what="u32"):
        pos = self._pos
        if pos + 4 > self._end:
            raise DecodeError(f"truncated: {what} needs 4 bytes")
        self._pos = pos + 4
        return _U32(self._data, pos)[0]

    def u64(self, what="u64"):
        pos = self._pos
        if pos + 8 > self._end:
            raise DecodeError(f"truncated: {what} needs 8 bytes")
        self._pos = pos + 8
        return _U64(self._data, pos)[0]

    def fixed(self, size, what="field"):
        pos = self._pos
        end = pos + size
        if end > self._end:
            raise DecodeError(f"truncated: {what} needs {size} bytes")
        self._pos = end
        return self._data[pos:end]

    def varbytes(self, limit, what="bytes"):
        n = _U32(self._data, self._at(4, what + " length"))[0]
        if n > limit:
            raise DecodeError(f"{what} of {n} bytes exceeds the limit of {limit}")
        return self._take(n, what)

    def count(self, limit, what="count"):
        pos = self._pos
        if pos + 4 > self._end:
            raise DecodeError(f"truncated: {what} needs 4 bytes")
        self._pos = pos + 4
        n = _U32(self._data, pos)[0]
        if n > limit:
            raise DecodeError(f"{what} {n} exceeds the limit of {limit}")
        return n

    def remaining(self):
        return self._end - self._pos

    def end(self):
        """Require that every byte was consumed."""
        if self._pos != self._end:
            raise DecodeError(f"{self._end - self._pos} trailing bytes")
