"""The conflict sets this node voted on, as schema 3 stores them.

Rows are written in the journal's group commit before the votes they back
leave the node (:func:`write`), removed in the commit that journals the
finalization of a member (:func:`delete_decided`), and read back at open
(:func:`read`). Plain rows only: the consensus layer's records are built by
the node from them.
"""

from dataclasses import dataclass, field

from timecoin.ledger.tx import OutPoint, decode_tx


@dataclass(frozen=True)
class StoredConflictSet:
    """One conflict set: the outpoint its members spend, the members' txids in
    arrival order, and the member this node votes for (no members: delete the set)."""

    outpoint: OutPoint
    members: tuple
    preferred: bytes


@dataclass
class ConflictSetBatch:
    """Conflict sets to write in one commit, with the raw bytes of their members."""

    sets: list = field(default_factory=list)
    raws: dict = field(default_factory=dict)  # txid -> raw transaction

    def extend(self, other):
        self.sets.extend(other.sets)
        self.raws.update(other.raws)

    def __bool__(self):
        return bool(self.sets)


@dataclass(frozen=True)
class RestoredConflictSets:
    """What open reads back: the sets, the pending transactions ``(txid, raw)``
    in the order first saved, and the UTXO rows their inputs spend."""

    sets: tuple = ()
    pending: tuple = ()
    utxos: tuple = ()


def write(conn, batch):
    """Replace the stored rows of each set in ``batch`` (later entries win)."""
    latest = {}
    for stored in batch.sets:
        latest[stored.outpoint] = stored
    for op, stored in latest.items():
        key = (op.txid, op.vout)
        conn.execute("DELETE FROM conflict_set_members WHERE prev_txid = ? AND prev_vout = ?",
                     key)
        if not stored.members:  # a set emptied without a decision: forgotten
            conn.execute("DELETE FROM conflict_sets WHERE prev_txid = ? AND prev_vout = ?", key)
            continue
        conn.execute("INSERT OR REPLACE INTO conflict_sets VALUES (?, ?, ?)",
                     (*key, stored.preferred))
        conn.executemany("INSERT INTO conflict_set_members VALUES (?, ?, ?, ?)",
                         [(*key, n, txid) for n, txid in enumerate(stored.members)])
    conn.executemany("INSERT OR IGNORE INTO pending_txs (txid, raw) VALUES (?, ?)",
                     [(txid, raw) for txid, raw in batch.raws.items()])
    if latest:  # members removed from their sets (cancelled) are no longer pending
        conn.execute("DELETE FROM pending_txs WHERE txid NOT IN "
                     "(SELECT txid FROM conflict_set_members)")


def has_rows(conn):
    return conn.execute("SELECT EXISTS (SELECT 1 FROM conflict_sets)").fetchone()[0] == 1


def delete_decided(conn, journal_records):
    """Remove the sets of every input the journaled transactions spend, and the
    pending transactions no stored set names any more."""
    keys = [(i.prevout.txid, i.prevout.vout)
            for record in journal_records for i in decode_tx(record.raw).inputs]
    conn.executemany("DELETE FROM conflict_sets WHERE prev_txid = ? AND prev_vout = ?", keys)
    conn.executemany(
        "DELETE FROM conflict_set_members WHERE prev_txid = ? AND prev_vout = ?", keys)
    conn.executemany("DELETE FROM pending_txs WHERE txid = ?",
                     [(record.txid,) for record in journal_records])
    conn.execute("DELETE FROM pending_txs WHERE txid NOT IN "
                 "(SELECT txid FROM conflict_set_members)")


def read(conn):
    """``(sets, pending)``: every stored set and pending transaction."""
    members = {}
    for prev_txid, vout, txid in conn.execute(
            "SELECT prev_txid, prev_vout, txid FROM conflict_set_members "
            "ORDER BY prev_txid, prev_vout, position"):
        members.setdefault((bytes(prev_txid), vout), []).append(bytes(txid))
    sets = tuple(
        StoredConflictSet(OutPoint(bytes(prev_txid), vout),
                          tuple(members.get((bytes(prev_txid), vout), ())), bytes(preferred))
        for prev_txid, vout, preferred in conn.execute(
            "SELECT prev_txid, prev_vout, preferred FROM conflict_sets"))
    pending = tuple((bytes(txid), bytes(raw)) for txid, raw in conn.execute(
        "SELECT txid, raw FROM pending_txs ORDER BY rowid"))
    return sets, pending
