"""The masternode registry that goes with a snapshot, sans I/O.

A node that starts from a snapshot needs the registry after the snapshot's
block (who signs the next block, and where its reward goes). The serving
node stores the registry's rows with the snapshot and sends them with the
manifest, encoded as::

    registry = "timecoin-snapshot-registry" | u8 version (2) | u32 n (<= 65,536) |
               n x (pubkey 32 | u8 tier length | tier | collateral txid 32 |
                    u32 collateral vout | reward key hash 20 |
                    u8 has registration txid | [registration txid 32] |
                    u8 registered | [u64 registered height] | u8 leaving |
                    u64 deactivated at | u8 missed service)

What checks it (:func:`check_registry`): the active set the rows give must
hash to the block header's ``masternode_set_hash`` (so who signs, and with
what weight, is certified), and every active masternode's collateral must be
in the snapshot's UTXO set. The reward key hashes and pending registrations
are not certified by the header: a peer lying about them makes this node
compute other rewards than the network's blocks carry, so it refuses those
blocks (it stops; it never accepts a wrong one). Raises
:class:`~timecoin.ledger.snapshot.SnapshotError` (``bad-registry``,
``registry-mismatch``, ``collateral-missing``).
"""

from timecoin.ledger.encoding import DecodeError, Reader, Writer
from timecoin.ledger.registration import TIERS
from timecoin.ledger.registry import MasternodeRegistry, masternode_set_hash
from timecoin.ledger.snapshot import SnapshotError

MAGIC = b"timecoin-snapshot-registry"
VERSION = 2
MAX_ENTRIES = 65_536
MAX_REGISTRY_SIZE = len(MAGIC) + 5 + MAX_ENTRIES * (32 + 1 + 16 + 32 + 4 + 20 + 33 + 9 + 1 + 8 + 1)


def encode_registry(rows):
    """The encoding of registry ``rows`` (``MasternodeRegistry.rows()``)."""
    w = Writer().raw(MAGIC).u8(VERSION).count(len(rows), MAX_ENTRIES)
    for pubkey, tier, txid, vout, reward, reg_txid, height, leaving, deactivated, *rest in rows:
        missed = int(bool(rest[0])) if rest else 0
        tier_bytes = tier.encode()
        w.fixed(pubkey, 32).u8(len(tier_bytes)).raw(tier_bytes).fixed(txid, 32).u32(vout)
        w.fixed(reward, 20)
        w.u8(reg_txid is not None)
        if reg_txid is not None:
            w.fixed(reg_txid, 32)
        w.u8(height is not None)
        if height is not None:
            w.u64(height)
        w.u8(int(leaving)).u64(int(deactivated or 0)).u8(missed)
    return w.getvalue()


def decode_registry(data):
    """The rows of :func:`encode_registry`'s bytes; ``bad-registry`` if they are not."""
    if len(data) > MAX_REGISTRY_SIZE or bytes(data[:len(MAGIC)]) != MAGIC:
        raise SnapshotError("bad-registry", "not a snapshot registry")
    r = Reader(data)
    try:
        r.fixed(len(MAGIC))
        if r.u8("version") != VERSION:
            raise SnapshotError("bad-registry", "unsupported version")
        rows = []
        for _ in range(r.count(MAX_ENTRIES, "entries")):
            pubkey = r.fixed(32, "pubkey")
            tier = bytes(r.fixed(r.u8("tier length"), "tier")).decode("ascii")
            txid, vout, reward = r.fixed(32, "txid"), r.u32("vout"), r.fixed(20, "reward")
            reg_txid = r.fixed(32, "registration") if r.u8("flag") else None
            height = r.u64("height") if r.u8("flag") else None
            leaving, deactivated = r.u8("leaving"), r.u64("deactivated")
            missed = r.u8("missed service")
            if tier not in TIERS or leaving > 1 or missed > 1:
                raise SnapshotError("bad-registry", f"tier {tier!r}, leaving {leaving}, "
                                    f"missed service {missed}")
            rows.append((bytes(pubkey), tier, bytes(txid), vout, bytes(reward),
                         None if reg_txid is None else bytes(reg_txid), height, leaving,
                         deactivated, missed))
        r.end()
    except (DecodeError, UnicodeDecodeError) as e:
        raise SnapshotError("bad-registry", str(e)) from None
    if [row[0] for row in rows] != sorted({row[0] for row in rows}):
        raise SnapshotError("bad-registry", "entries not in ascending, distinct key order")
    return rows


def check_registry(rows, header, has_output):
    """Check decoded ``rows`` against the snapshot block's ``header``;
    ``has_output(outpoint)`` says whether the snapshot holds an output."""
    registry = MasternodeRegistry.from_rows(rows)
    if masternode_set_hash(registry.active_set()) != header.masternode_set_hash:
        raise SnapshotError("registry-mismatch",
                            "the registry's active set is not the header's")
    for entry in registry.entries():
        if entry.active and not entry.leaving and not has_output(entry.collateral):
            raise SnapshotError("collateral-missing",
                                f"masternode {entry.pubkey.hex()[:16]}'s collateral")
    return registry
