"""Canonical, bounded binary encoding shared by transactions and wire messages.

Every variable-length field carries an explicit upper bound, integers have one
encoding only (fixed-width, little-endian), and a decoder must consume its
input exactly: trailing bytes are an error. Anything that does not decode
raises :class:`DecodeError` and nothing else.
"""

import struct


class ReasonError(ValueError):
    """A refusal with a machine-readable ``reason`` and a human ``detail``;
    ``where`` (e.g. " (chunk 3)") names what is at fault, if anything."""

    def __init__(self, reason, detail="", where=""):
        super().__init__((reason if not detail else f"{reason}: {detail}") + where)
        self.reason = reason
        self.detail = detail


class DecodeError(ValueError):
    """The bytes are not a canonical encoding of the expected structure."""


class TruncatedError(DecodeError):
    """The bytes end before the structure does."""


class LimitError(DecodeError):
    """A length or count is above its bound."""


class TrailingBytesError(DecodeError):
    """Bytes are left over after the structure."""


_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class Writer:
    """Accumulates the canonical encoding of a structure."""

    __slots__ = ("_parts",)

    def __init__(self):
        self._parts = []

    def u8(self, value):
        self._parts.append(_U8.pack(value))
        return self

    def u16(self, value):
        self._parts.append(_U16.pack(value))
        return self

    def u32(self, value):
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value):
        self._parts.append(_U64.pack(value))
        return self

    def fixed(self, data, size):
        if len(data) != size:
            raise ValueError(f"expected {size} bytes, got {len(data)}")
        self._parts.append(bytes(data))
        return self

    def varbytes(self, data, limit):
        """A u32 length prefix then the bytes; ``limit`` bounds the length."""
        if len(data) > limit:
            raise ValueError(f"{len(data)} bytes exceeds the limit of {limit}")
        self._parts.append(_U32.pack(len(data)))
        self._parts.append(bytes(data))
        return self

    def text(self, value, limit):
        return self.varbytes(value.encode("utf-8"), limit)

    def count(self, n, limit):
        """A u32 element count, bounded by ``limit``."""
        if n > limit:
            raise ValueError(f"count {n} exceeds the limit of {limit}")
        self._parts.append(_U32.pack(n))
        return self

    def raw(self, data):
        self._parts.append(bytes(data))
        return self

    def getvalue(self):
        return b"".join(self._parts)


class Reader:
    """Reads a canonical encoding, enforcing bounds and exact consumption."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data):
        self._data = memoryview(bytes(data))
        self._pos = 0

    def _take(self, n, what):
        end = self._pos + n
        if end > len(self._data):
            raise TruncatedError(f"truncated: {what} needs {n} bytes")
        chunk = self._data[self._pos:end]
        self._pos = end
        return chunk

    def u8(self, what="u8"):
        return _U8.unpack(self._take(1, what))[0]

    def u16(self, what="u16"):
        return _U16.unpack(self._take(2, what))[0]

    def u32(self, what="u32"):
        return _U32.unpack(self._take(4, what))[0]

    def u64(self, what="u64"):
        return _U64.unpack(self._take(8, what))[0]

    def fixed(self, size, what="field"):
        return bytes(self._take(size, what))

    def varbytes(self, limit, what="bytes"):
        n = self.u32(what + " length")
        if n > limit:
            raise LimitError(f"{what} of {n} bytes exceeds the limit of {limit}")
        return bytes(self._take(n, what))

    def text(self, limit, what="text"):
        try:
            return self.varbytes(limit, what).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError(f"{what} is not UTF-8") from e

    def count(self, limit, what="count"):
        n = self.u32(what)
        if n > limit:
            raise LimitError(f"{what} {n} exceeds the limit of {limit}")
        return n

    def remaining(self):
        return len(self._data) - self._pos

    def end(self):
        """Require that every byte was consumed."""
        if self._pos != len(self._data):
            raise TrailingBytesError(f"{len(self._data) - self._pos} trailing bytes")
