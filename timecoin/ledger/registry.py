"""The masternode registry, sans I/O: who is registered, and the active set.

Finalized transactions make changes *pending*: a registration adds a pending
entry, a spend of a registered collateral output marks its entry as leaving.
Only a block moves them into the **active set** (``apply_block``): a
registration the block confirms becomes active at that height, a confirmed
spend of a collateral removes its masternode, and the block's deactivations
take masternodes out of the active set. The genesis registrations are active
from height 0. Until blocks exist, the active set is the genesis set.

A deactivated masternode (evidence of double signing) stays out of the active
set for :data:`DEACTIVATION_BLOCKS` blocks and then rejoins by itself: the
block at height ``deactivated_at + DEACTIVATION_BLOCKS`` puts it back (every
node applies the same blocks, so every node's set changes at that block).

A masternode deactivated for **missed service** (``missed`` in
``apply_block``, see :mod:`timecoin.ledger.missed`) does not rejoin by
itself: it rejoins by announcing again, with a ``masternode_register``
transaction for the same masternode key that spends its collateral output
(and, as every registration, creates its collateral anew). Such a
re-announcement is the one registration of a registered key
:meth:`MasternodeRegistry.check_registration` admits; the block that
confirms it removes the old entry (its collateral is spent) and adds the new
one, active from that block.

Duplicates are resolved in order: a registration whose masternode key is
registered already (pending, active or leaving) changes nothing, so the first
one finalized (and, at a block, the first one in the block) wins.
"""

import hashlib
import struct
from dataclasses import dataclass

from zope.interface import implementer

from timecoin.interfaces import IMasternodeRegistry
from timecoin.ledger.keys import encode_address, pubkey_hash
from timecoin.ledger.registration import TIERS, TIERS_BY_CODE
from timecoin.ledger.tx import KIND_MASTERNODE_REGISTER, OutPoint, TxRejected, registration_of

SET_HASH_TAG = b"timecoin-masternode-set"
_WEIGHT = struct.Struct("<Q")
#: Blocks a deactivated masternode stays out of the active set (see the
#: module docstring and doc/blocks.md): about 3.3 minutes on devnet, 100
#: minutes on testnet, 16.7 hours on mainnet.
DEACTIVATION_BLOCKS = 100


@dataclass
class MasternodeEntry:
    """One registered masternode (``registered_height`` None: pending)."""

    pubkey: bytes
    tier: str
    collateral: OutPoint
    reward_key_hash: bytes
    registration_txid: bytes | None = None
    registered_height: int | None = None
    #: Its collateral was spent by a finalized transaction; it leaves at the
    #: block that confirms the spend.
    leaving: bool = False
    #: The height of the block that took it out of the active set (evidence,
    #: or missed service), 0 while it is not deactivated.
    deactivated_at: int = 0
    #: It was deactivated for missed service: it rejoins by announcing again,
    #: not after ``DEACTIVATION_BLOCKS``.
    missed_service: bool = False

    @property
    def deactivated(self):
        return self.deactivated_at > 0

    @property
    def weight(self):
        return TIERS[self.tier].weight

    @property
    def active(self):
        return self.registered_height is not None and not self.deactivated

    def row(self):
        """The entry as a storage row (see :meth:`MasternodeRegistry.from_rows`)."""
        return (self.pubkey, self.tier, self.collateral.txid, self.collateral.vout,
                self.reward_key_hash, self.registration_txid, self.registered_height,
                int(self.leaving), self.deactivated_at, int(self.missed_service))


def entry_from_registration(tx):
    """The pending :class:`MasternodeEntry` a registration transaction creates."""
    reg = registration_of(tx)
    return MasternodeEntry(reg.masternode_pubkey, TIERS_BY_CODE[reg.tier_code].name,
                           OutPoint(tx.txid, reg.collateral_vout), reg.reward_key_hash,
                           tx.txid)


def masternode_set_hash(active_set):
    """The hash a header's ``masternode_set_hash`` commits to, of ``active_set``
    (``{pubkey: weight}``): BLAKE2b-256 of ``"timecoin-masternode-set"`` then,
    in ascending pubkey order, each 32-byte pubkey and its weight as a
    little-endian u64. The one definition of the set hash; the consensus
    package's ``ValidatorSet.hash()`` computes the same bytes (it may not
    import the ledger) and a test holds the two equal."""
    h = hashlib.blake2b(SET_HASH_TAG, digest_size=32)
    for pubkey in sorted(active_set):
        if len(pubkey) != 32:
            raise ValueError("a masternode public key is 32 bytes")
        h.update(pubkey + _WEIGHT.pack(active_set[pubkey]))
    return h.digest()


@implementer(IMasternodeRegistry)
class MasternodeRegistry:
    """The registered masternodes and the active set (see the module docstring)."""

    def __init__(self, entries=()):
        self._entries = {}
        self._by_collateral = {}
        for entry in entries:
            self._add(entry)

    @classmethod
    def from_genesis(cls, genesis):
        """The registry a network starts with: its genesis registrations, active at 0."""
        return cls(MasternodeEntry(r.pubkey, r.tier, r.collateral, r.reward_key_hash, None, 0)
                   for r in genesis.registrations)

    @classmethod
    def from_rows(cls, rows):
        """The registry from storage rows ``(pubkey, tier, collateral txid,
        collateral vout, reward key hash, registration txid, registered height,
        leaving, deactivated at (0: not deactivated), missed service (0 or 1;
        absent in rows of schema versions before 6))``."""
        entries = []
        for pk, tier, txid, vout, reward, reg_txid, height, leaving, deactivated, *rest in rows:
            entries.append(MasternodeEntry(
                bytes(pk), tier, OutPoint(bytes(txid), int(vout)), bytes(reward),
                bytes(reg_txid) if reg_txid is not None else None, height, bool(leaving),
                int(deactivated or 0), bool(rest[0]) if rest else False))
        return cls(entries)

    def _add(self, entry):
        self._entries[entry.pubkey] = entry
        self._by_collateral[entry.collateral] = entry.pubkey

    def _remove(self, pubkey):
        entry = self._entries.pop(pubkey)
        del self._by_collateral[entry.collateral]

    # -- finalized transactions ---------------------------------------------

    def check_registration(self, tx):
        if tx.kind != KIND_MASTERNODE_REGISTER:
            return
        pubkey = registration_of(tx).masternode_pubkey
        if pubkey in self._entries and not self.reannounces(tx):
            raise TxRejected("masternode-registered",
                             f"masternode {pubkey.hex()} is registered already")

    def reannounces(self, tx):
        """True if registration ``tx`` re-announces a masternode deactivated
        for missed service: same key, spending its collateral output."""
        entry = self._entries.get(registration_of(tx).masternode_pubkey)
        return (entry is not None and entry.missed_service and entry.deactivated
                and any(txin.prevout == entry.collateral for txin in tx.inputs))

    def finalized(self, tx):
        changed = False
        for txin in tx.inputs:
            pubkey = self._by_collateral.get(txin.prevout)
            if pubkey is not None and not self._entries[pubkey].leaving:
                self._entries[pubkey].leaving = True
                changed = True
        if tx.kind == KIND_MASTERNODE_REGISTER:
            entry = entry_from_registration(tx)
            if entry.pubkey not in self._entries:
                self._add(entry)
                changed = True
        return changed

    # -- blocks ----------------------------------------------------------------

    def apply_block(self, height, confirmed_txs, deactivations=(), missed=()):
        joined, left = [], []
        for tx in confirmed_txs:
            for txin in tx.inputs:
                pubkey = self._by_collateral.get(txin.prevout)
                if pubkey is not None:
                    self._remove(pubkey)
                    left.append(pubkey)
            if tx.kind != KIND_MASTERNODE_REGISTER:
                continue
            entry = entry_from_registration(tx)
            known = self._entries.get(entry.pubkey)
            if known is None:
                self._add(entry)
                known = entry
            elif known.collateral != entry.collateral:
                continue  # a duplicate: the first registration of the key holds
            if known.registered_height is None:
                known.registered_height = height
                joined.append(known.pubkey)
        rejoined = []
        for entry in self._entries.values():
            if entry.deactivated and not entry.missed_service and \
                    height >= entry.deactivated_at + DEACTIVATION_BLOCKS:
                entry.deactivated_at = 0
                rejoined.append(entry.pubkey)
        deactivated = []
        for pubkey in deactivations:
            entry = self._entries.get(pubkey)
            if entry is not None and entry.active:
                entry.deactivated_at = height
                deactivated.append(pubkey)
        for pubkey in missed:
            entry = self._entries.get(pubkey)
            if entry is not None and entry.active:
                entry.deactivated_at = height
                entry.missed_service = True
                deactivated.append(pubkey)
        return {"joined": joined, "left": left, "deactivated": deactivated,
                "rejoined": sorted(rejoined)}

    # -- views -----------------------------------------------------------------

    def active_set(self):
        return {pk: e.weight for pk, e in sorted(self._entries.items()) if e.active}

    def masternode_set_hash(self):
        return masternode_set_hash(self.active_set())

    def get(self, pubkey):
        return self._entries.get(pubkey)

    def collateral_of(self, outpoint):
        return self._by_collateral.get(outpoint)

    def entries(self):
        return [self._entries[pk] for pk in sorted(self._entries)]

    def rows(self):
        return [e.row() for e in self.entries()]

    def describe(self, network_id):
        return [
            {
                "pubkey": e.pubkey.hex(),
                "address": encode_address(network_id, pubkey_hash(e.pubkey)),
                "tier": e.tier,
                "weight": e.weight,
                "collateral": str(e.collateral),
                "reward_address": encode_address(network_id, e.reward_key_hash),
                "registered_height": e.registered_height,
                "active": e.active,
                "leaving": e.leaving,
                "missed_service": e.missed_service and e.deactivated,
            }
            for e in self.entries()
        ]

    def __len__(self):
        return len(self._entries)
