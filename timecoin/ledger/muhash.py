"""MuHash3072: an incremental, order-independent hash of a set.

Each element maps to a number modulo the prime ``2**3072 - 1103717`` (by
SHAKE-256 expanded to 384 bytes); the set hash is the product of the elements
added divided by the product of those removed, then SHA-256'd. This is the
construction Bitcoin Core uses for ``gettxoutsetinfo`` (there the expansion is
ChaCha20); finding two sets with the same hash is as hard as the discrete log
problem in that group, unlike XOR or a sum, where collisions are easy.
"""

import hashlib

PRIME = 2**3072 - 1103717
_SIZE = 384
_C = 2**3072 - PRIME
_MASK = 2**3072 - 1


def _mulmod(a, b):
    """``a * b % PRIME`` for ``a, b < PRIME``: the prime is ``2**3072 - c`` with a
    small ``c``, so two folds of the high half (times ``c``) reduce the product."""
    x = a * b
    x = (x >> 3072) * _C + (x & _MASK)
    x = (x >> 3072) * _C + (x & _MASK)
    return x - PRIME if x >= PRIME else x


def _to_num(element):
    n = int.from_bytes(hashlib.shake_256(element).digest(_SIZE), "little") % PRIME
    return n or 1


class MuHash:
    """A running set hash; ``add``/``remove`` in any order give the same digest."""

    __slots__ = ("numerator", "denominator")

    def __init__(self, numerator=1, denominator=1):
        self.numerator = numerator
        self.denominator = denominator

    def add(self, element):
        self.numerator = _mulmod(self.numerator, _to_num(element))

    def remove(self, element):
        self.denominator = _mulmod(self.denominator, _to_num(element))

    def combine(self, other):
        self.numerator = (self.numerator * other.numerator) % PRIME
        self.denominator = (self.denominator * other.denominator) % PRIME

    def copy(self):
        return MuHash(self.numerator, self.denominator)

    def digest(self):
        value = (self.numerator * pow(self.denominator, -1, PRIME)) % PRIME
        return hashlib.sha256(value.to_bytes(_SIZE, "little")).digest()

    def hexdigest(self):
        return self.digest().hex()

    def serialize(self):
        """768 bytes; normalised so the stored state stays small."""
        value = (self.numerator * pow(self.denominator, -1, PRIME)) % PRIME
        return value.to_bytes(_SIZE, "little") + (1).to_bytes(_SIZE, "little")

    @classmethod
    def deserialize(cls, data):
        if len(data) != 2 * _SIZE:
            raise ValueError("a MuHash state is 768 bytes")
        return cls(int.from_bytes(data[:_SIZE], "little"), int.from_bytes(data[_SIZE:], "little"))
