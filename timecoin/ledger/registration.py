"""Masternode tiers and the payload of a ``masternode_register`` transaction.

A registration is a transaction of kind ``KIND_MASTERNODE_REGISTER``: its
inputs pay for it like any transaction's, and one of its own outputs is the
collateral (exactly the tier's amount, locked to the key that signs input 0).
The payload, fixed-width, names that output and the masternode::

    tier u8 | collateral_vout u32 | masternode pubkey 32 | reward key_hash 20 |
    masternode signature 64

The masternode signs the same sighash as the inputs (the encoding with every
input signature and its own signature zeroed), so one registration binds the
collateral's owner, the masternode key, the tier and the reward address
together. Spending the collateral output later deregisters the masternode.
"""

import struct
from typing import NamedTuple

from timecoin.ledger.keys import ADDRESS_HASH_SIZE, PUBKEY_SIZE, SIGNATURE_SIZE
from timecoin.ledger.networks import COIN


class Tier(NamedTuple):
    """A collateral tier: its wire code, collateral in units and voting weight."""

    name: str
    code: int
    collateral: int
    weight: int


FREE = Tier("free", 0, 0, 0)
BRONZE = Tier("bronze", 1, 1_000 * COIN, 10)
SILVER = Tier("silver", 2, 10_000 * COIN, 100)
GOLD = Tier("gold", 3, 100_000 * COIN, 1_000)
#: The tiers a registration may name, by name (Free needs no registration).
TIERS = {t.name: t for t in (BRONZE, SILVER, GOLD)}
TIERS_BY_CODE = {t.code: t for t in TIERS.values()}
#: Voting weight of each tier, Free included: a vote without collateral would
#: cost an attacker nothing, so Free weighs nothing.
TIER_WEIGHTS = {t.name: t.weight for t in (FREE, BRONZE, SILVER, GOLD)}

_PAYLOAD = struct.Struct(f"<BI{PUBKEY_SIZE}s{ADDRESS_HASH_SIZE}s{SIGNATURE_SIZE}s")
#: Size of a registration payload, in bytes.
PAYLOAD_SIZE = _PAYLOAD.size
#: The masternode signature is the payload's last field, so the encoding's last bytes.
SIGNATURE_AT_END = SIGNATURE_SIZE


class Registration(NamedTuple):
    """A decoded registration payload (``tier_code`` is checked separately)."""

    tier_code: int
    collateral_vout: int
    masternode_pubkey: bytes
    reward_key_hash: bytes
    masternode_signature: bytes = bytes(SIGNATURE_SIZE)

    @property
    def tier(self):
        return TIERS_BY_CODE.get(self.tier_code)

    def encode(self):
        return _PAYLOAD.pack(*self)


def decode_payload(payload):
    """The :class:`Registration` in ``payload``, or None if it is not one's size."""
    if len(payload) != PAYLOAD_SIZE:
        return None
    return Registration(*_PAYLOAD.unpack(payload))
