"""What the node database stores: journal records, the chain's summary, and
the fold of journal entries into the UTXO tables."""

import struct
from dataclasses import dataclass

from timecoin.ledger.muhash import MuHash
from timecoin.ledger.tx import OutPoint, ledger_changes
from timecoin.ledger.utxo import utxo_element
from timecoin.storage.integrity import DamageFound
from timecoin.storage.masternode_tables import registration_row

_UNDO = struct.Struct("<Q20s")


@dataclass
class ChainMeta:
    """What start-up reads back: the chain's identity and the UTXO set's summary."""

    genesis_hash: bytes
    applied_seq: int
    last_seq: int
    muhash: MuHash
    count: int
    total_amount: int
    replayed: int = 0
    #: txids of the last journal entries (newest last), for votes after a restart.
    recent_txids: tuple = ()
    #: True once the rows were checked against the stored summary (at open).
    checked: bool = False
    #: The masternode table's rows (``MasternodeRegistry.from_rows``), or
    #: None: the genesis registrations.
    masternodes: list | None = None
    #: The conflict sets this node voted on and their pending transactions
    #: (a ``RestoredConflictSets``), or None.
    conflict_sets: object = None
    #: The height of the snapshot the database was installed from (0: none;
    #: it then holds every block from the genesis).
    snapshot_base: int = 0
    #: The height of the highest stored block (0: only the genesis).
    top_height: int = 0


@dataclass(frozen=True)
class JournalRecord:
    """A finalized transaction as the journal stores it."""

    seq: int
    txid: bytes
    raw: bytes
    spent: bytes
    finalized_at: float
    finality_ms: float | None
    block_height: int | None = None


def encode_undo(entries):
    return b"".join(_UNDO.pack(e.amount, e.key_hash) for e in entries)


def decode_undo(data):
    """``[(amount, key_hash)]`` of :func:`encode_undo`'s bytes."""
    return list(_UNDO.iter_unpack(data))


def _fold_muhash(muhash, changes):
    """``muhash`` with the spends and new outputs of journal ``changes`` folded in."""
    for txid, prevouts, undo, outputs in changes:
        for (prev_txid, vout), (amount, key_hash) in zip(prevouts, undo, strict=True):
            muhash.remove(utxo_element(OutPoint(prev_txid, vout), amount, key_hash))
        for vout, (amount, key_hash) in enumerate(outputs):
            muhash.add(utxo_element(OutPoint(txid, vout), amount, key_hash))
    return muhash


def plan_fold(conn, meta, up_to_seq, summary=None):
    """``(deleted, created, meta updates, registered, spent)`` that fold the
    journal up to ``up_to_seq`` into the tables as ``meta`` (a
    :class:`ChainMeta`) describes them, or None if they hold it already.
    ``registered`` and ``spent`` are the masternode table's part
    (:func:`timecoin.storage.masternode_tables.write_fold`)."""
    if up_to_seq <= meta.applied_seq:
        return None
    rows = conn.execute(
        "SELECT seq, raw, spent FROM transactions WHERE seq > ? AND seq <= ? ORDER BY seq",
        (meta.applied_seq, up_to_seq),
    ).fetchall()
    count, total = meta.count, meta.total_amount
    created, deleted, changes, registered, all_spent = {}, [], [], [], []
    for seq, raw, spent in rows:
        txid, prevouts, outputs = ledger_changes(raw)
        row = registration_row(raw)
        if row is not None:
            registered.append(row)
        all_spent.extend(prevouts)
        undo = list(_UNDO.iter_unpack(spent))
        if len(undo) != len(prevouts):
            raise DamageFound(f"journal record {seq} has undo data of the wrong size")
        for key, (amount, _) in zip(prevouts, undo, strict=True):
            count -= 1
            total -= amount
            if created.pop(key, None) is None:
                deleted.append(key)
        for vout, (amount, key_hash) in enumerate(outputs):
            count += 1
            total += amount
            created[(txid, vout)] = (txid, vout, amount, key_hash)
        changes.append((txid, prevouts, undo, outputs))
    last = rows[-1][0] if rows else up_to_seq
    if summary is not None and summary[1:] == (count, total) and last == up_to_seq:
        muhash = summary[0]
    else:
        muhash = _fold_muhash(meta.muhash, changes)
    return deleted, list(created.values()), [
        (last, "applied_seq"), (muhash.serialize(), "muhash"),
        (count, "utxo_count"), (total, "utxo_total")], registered, all_spent

