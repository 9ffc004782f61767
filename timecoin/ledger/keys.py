"""Ed25519 keys (PyNaCl) and checksummed, network-prefixed addresses.

An address is ``TIME<network id>`` followed by the Base58 encoding of the
20-byte BLAKE2b hash of the public key and a 4-byte checksum. The checksum
covers the prefix too, so an address retyped with another network's prefix, or
with any character changed, is refused.
"""

import hashlib
import json
import os

import nacl.exceptions
import nacl.signing

from timecoin.ledger.networks import BY_ID, DEVNET

PUBKEY_SIZE = 32
SIGNATURE_SIZE = 64
ADDRESS_HASH_SIZE = 20

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


class AddressError(ValueError):
    """The text is not a valid address (of the expected network)."""


class KeyFileError(ValueError):
    """A key file is missing, unreadable or malformed."""


def b58encode(data):
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text):
    n = 0
    for c in text:
        try:
            n = n * 58 + _B58_INDEX[c]
        except KeyError:
            raise AddressError(f"invalid character {c!r}") from None
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def pubkey_hash(pubkey):
    """The 20-byte hash of a public key that an address carries."""
    return hashlib.blake2b(pubkey, digest_size=ADDRESS_HASH_SIZE).digest()


def _checksum(prefix, payload):
    return hashlib.blake2b(prefix.encode() + payload, digest_size=4).digest()


def encode_address(network_id, key_hash):
    prefix = BY_ID[network_id].address_prefix
    return prefix + b58encode(key_hash + _checksum(prefix, key_hash))


def decode_address(text, network_id=None):
    """The pubkey hash in ``text``; ``AddressError`` for any typo.

    With ``network_id``, an address of another network is refused too.
    Returns ``(network_id, key_hash)``.
    """
    if not isinstance(text, str) or len(text) < 6 or not text.startswith("TIME"):
        raise AddressError(f"not a timecoin address: {text!r}")
    try:
        found_id = int(text[4])
    except ValueError:
        raise AddressError(f"unknown address prefix in {text!r}") from None
    if found_id not in BY_ID:
        raise AddressError(f"unknown address prefix in {text!r}")
    prefix = text[:5]
    raw = b58decode(text[5:])
    if len(raw) != ADDRESS_HASH_SIZE + 4:
        raise AddressError(f"address {text!r} has the wrong length")
    key_hash, check = raw[:ADDRESS_HASH_SIZE], raw[ADDRESS_HASH_SIZE:]
    if _checksum(prefix, key_hash) != check:
        raise AddressError(f"address {text!r} has a bad checksum (mistyped?)")
    if network_id is not None and found_id != network_id:
        raise AddressError(
            f"address {text!r} belongs to {BY_ID[found_id].name}, "
            f"not {BY_ID[network_id].name}"
        )
    return found_id, key_hash


def verify(pubkey, message, signature):
    """True if ``signature`` by ``pubkey`` over ``message`` is valid."""
    try:
        nacl.signing.VerifyKey(pubkey).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


class PrivateKey:
    """An Ed25519 signing key with the public key and address it implies."""

    def __init__(self, seed):
        self._signing = nacl.signing.SigningKey(bytes(seed))
        self.seed = bytes(seed)
        self.pubkey = bytes(self._signing.verify_key)
        self.key_hash = pubkey_hash(self.pubkey)

    @classmethod
    def generate(cls):
        return cls(os.urandom(32))

    @classmethod
    def devnet(cls, index):
        """Development key ``index``: public knowledge, funded by devnet's genesis."""
        seed = hashlib.blake2b(
            b"timecoin devnet key " + str(int(index)).encode(), digest_size=32
        ).digest()
        return cls(seed)

    def sign(self, message):
        return self._signing.sign(message).signature

    def address(self, network_id=DEVNET.network_id):
        return encode_address(network_id, self.key_hash)

    # Key files: JSON with the hex seed, written with mode 0600.
    def save(self, path, network_id=DEVNET.network_id):
        data = {
            "type": "timecoin-ed25519",
            "seed": self.seed.hex(),
            "pubkey": self.pubkey.hex(),
            "address": self.address(network_id),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, path):
        try:
            with open(path) as f:
                data = json.load(f)
            seed = bytes.fromhex(data["seed"])
        except OSError as e:
            raise KeyFileError(f"cannot read key file {path}: {e.strerror}") from None
        except (ValueError, KeyError, TypeError):
            raise KeyFileError(f"key file {path} is not a timecoin key") from None
        if len(seed) != 32:
            raise KeyFileError(f"key file {path} holds a seed of the wrong size")
        return cls(seed)
