"""The ``snapshots`` and ``snapshot_chunks`` tables (schema version 6): the
UTXO sets this node serves, and the install of a set fetched from peers.

**The set after block H.** The ``utxos`` table holds the set as of
``meta.applied_seq``, a position in the finality journal, not a block
boundary: transactions finalized after block H may be folded in already, and
transactions block H confirms may not be yet. :func:`set_after_block` starts
from the table and corrects it with the journal's undo data: entries folded
in that no block up to H confirms are undone (their outputs removed, their
spent inputs put back), entries block H or an earlier one confirms that are
not folded in yet are applied. The result, in ascending outpoint order, is
the set whose MuHash is block H's ``utxo_set_hash``.

**Installing** (:func:`install_snapshot`): a node that fetched and checked a
snapshot replaces its UTXO rows, the set's summary in ``meta``, the block row
at the snapshot height (header, body, certificate), the registry's rows and
the stored hand-offs, and records the height as ``snapshot_base``, all in
one transaction.
"""

import time
from dataclasses import dataclass

from timecoin.ledger.snapshot import SnapshotManifest, cut_snapshot
from timecoin.ledger.tx import OutPoint, ledger_changes
from timecoin.storage import masternode_tables
from timecoin.storage.records import decode_undo

#: How many snapshots are kept (the newest ones).
KEEP_SNAPSHOTS = 2
_BASE = "snapshot_base"
_REMOVED = object()


def _delta_remove(delta, key):
    if key in delta and delta[key] is not _REMOVED:
        del delta[key]  # added by the delta, not a table row
    else:
        delta[key] = _REMOVED


def _delta_add(delta, key, value):
    if delta.get(key) is _REMOVED:
        del delta[key]  # the table's row, put back
    else:
        delta[key] = value


def _undo(delta, raw, spent):
    txid, prevouts, outputs = ledger_changes(bytes(raw))
    for vout in range(len(outputs)):
        _delta_remove(delta, (txid, vout))
    for prevout, entry in zip(prevouts, decode_undo(bytes(spent)), strict=True):
        _delta_add(delta, tuple(prevout), entry)


def _apply(delta, raw):
    txid, prevouts, outputs = ledger_changes(bytes(raw))
    for prevout in prevouts:
        _delta_remove(delta, tuple(prevout))
    for vout, entry in enumerate(outputs):
        _delta_add(delta, (txid, vout), entry)


def set_after_block(conn, height, batch=10_000):
    """Yield ``(OutPoint, amount, key_hash)`` of the UTXO set after block
    ``height`` in ascending outpoint order (see the module docstring)."""
    applied = conn.execute("SELECT value FROM meta WHERE key = 'applied_seq'").fetchone()[0]
    delta = {}
    for raw, spent in conn.execute(
            "SELECT raw, spent FROM transactions WHERE seq <= ? AND "
            "(block_height IS NULL OR block_height > ?) ORDER BY seq DESC", (applied, height)):
        _undo(delta, raw, spent)
    for (raw,) in conn.execute(
            "SELECT raw FROM transactions WHERE seq > ? AND block_height <= ? ORDER BY seq",
            (applied, height)):
        _apply(delta, raw)
    added = sorted((key, value) for key, value in delta.items() if value is not _REMOVED)
    position = 0
    cursor = conn.execute("SELECT txid, vout, amount, key_hash FROM utxos ORDER BY txid, vout")
    while rows := cursor.fetchmany(batch):
        for txid, vout, amount, key_hash in rows:
            key = (bytes(txid), vout)
            while position < len(added) and added[position][0] < key:
                (a_txid, a_vout), (a_amount, a_key_hash) = added[position]
                yield OutPoint(a_txid, a_vout), a_amount, bytes(a_key_hash)
                position += 1
            if delta.get(key) is _REMOVED:
                continue
            yield OutPoint(*key), amount, bytes(key_hash)
    for (a_txid, a_vout), (a_amount, a_key_hash) in added[position:]:
        yield OutPoint(a_txid, a_vout), a_amount, bytes(a_key_hash)


def write_snapshot(conn, network_id, height, block_hash, chunk_outputs, masternodes=b"",
                   keep=KEEP_SNAPSHOTS, now=None, expected_set_hash=None):
    """Cut the set after block ``height`` into chunks and store them with
    their manifest and ``masternodes`` (the registry's rows after the block,
    encoded) inside a transaction, dropping all but the newest ``keep``
    snapshots; return the :class:`SnapshotManifest`. With
    ``expected_set_hash`` (the block header's), a cut whose MuHash differs is
    a :class:`ValueError` and nothing is stored: a node never serves a set
    its own header does not certify."""
    manifest, chunks = cut_snapshot(network_id, height, block_hash,
                                    set_after_block(conn, height), chunk_outputs)
    if expected_set_hash is not None and manifest.utxo_set_hash != expected_set_hash:
        raise ValueError(f"the set cut after block {height} does not hash to its header's "
                         "utxo_set_hash; no snapshot stored")
    conn.execute("DELETE FROM snapshot_chunks WHERE height = ?", (height,))
    conn.execute("INSERT OR REPLACE INTO snapshots (height, block_hash, manifest, masternodes, "
                 "created_at) VALUES (?, ?, ?, ?, ?)",
                 (height, block_hash, manifest.encode(), masternodes,
                  time.time() if now is None else now))
    conn.executemany("INSERT INTO snapshot_chunks (height, idx, data) VALUES (?, ?, ?)",
                     [(height, index, data) for index, data in enumerate(chunks)])
    old = [h for (h,) in conn.execute(
        "SELECT height FROM snapshots ORDER BY height DESC LIMIT -1 OFFSET ?", (keep,))]
    for old_height in old:
        conn.execute("DELETE FROM snapshots WHERE height = ?", (old_height,))
        conn.execute("DELETE FROM snapshot_chunks WHERE height = ?", (old_height,))
    return manifest


def snapshot_heights(conn):
    """The heights of the stored snapshots, newest first."""
    return [h for (h,) in conn.execute("SELECT height FROM snapshots ORDER BY height DESC")]


def read_manifest(conn, height=None):
    """``(manifest bytes, masternodes bytes)`` of the snapshot at ``height``
    (None: the newest), or None."""
    if height is None:
        row = conn.execute("SELECT manifest, masternodes FROM snapshots "
                           "ORDER BY height DESC LIMIT 1")
    else:
        row = conn.execute("SELECT manifest, masternodes FROM snapshots WHERE height = ?",
                           (height,))
    row = row.fetchone()
    return (bytes(row[0]), bytes(row[1])) if row is not None else None


def read_chunk(conn, height, index):
    """The bytes of chunk ``index`` of the snapshot at ``height``, or None."""
    row = conn.execute("SELECT data FROM snapshot_chunks WHERE height = ? AND idx = ?",
                       (height, index)).fetchone()
    return bytes(row[0]) if row is not None else None


def snapshot_base(conn):
    """The height of the snapshot this database was installed from, or 0."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_BASE,)).fetchone()
    return row[0] if row is not None else 0


@dataclass(frozen=True)
class InstalledSnapshot:
    """A fetched and checked snapshot, ready to install: its ``manifest``,
    every output (``(OutPoint, amount, key_hash)``), the set's ``muhash``,
    the ``block_row`` of its block ``(height, hash, header, body,
    certificate, committed_at)``, the registry's ``masternode_rows`` after
    it and the ``handoffs`` ``[(height, {pubkey: weight})]`` up to it, with
    ``handoff_rows`` ``[(height, hash, header, certificate)]``: the headers
    and certificates of those blocks (stored without a body)."""

    manifest: SnapshotManifest
    outputs: list
    muhash: object
    block_row: tuple
    masternode_rows: list
    handoffs: list
    handoff_rows: list = ()


def read_base(conn):
    """``(base height, [(height, header, certificate)])`` of a database
    installed from a snapshot: the snapshot block and the hand-off blocks
    below it (stored without a body); None for one that holds every block."""
    base = snapshot_base(conn)
    if not base:
        return None
    return base, [(height, bytes(header), bytes(certificate)) for height, header, certificate
                  in conn.execute("SELECT height, header, certificate FROM blocks WHERE "
                                  "height > 0 AND height <= ? ORDER BY height", (base,))]


def install_snapshot(conn, installed):
    """Replace the node's state with a fetched, checked snapshot (inside a
    transaction) with ``installed``, an :class:`InstalledSnapshot`. The
    journal keeps its genesis entries (their ``block_height`` 0):
    ``applied_seq`` stays where it is."""
    if not isinstance(installed.manifest, SnapshotManifest):
        raise TypeError("a SnapshotManifest expected")
    height = installed.manifest.height
    if snapshot_base(conn) or conn.execute(
            "SELECT 1 FROM blocks WHERE height > 0 LIMIT 1").fetchone():
        raise ValueError("the database holds blocks already: a snapshot is installed only "
                         "into a fresh one")
    conn.execute("DELETE FROM utxos")
    # Rows in key order, the secondary index built once at the end (much
    # faster than keeping it up to date row by row).
    conn.execute("DROP INDEX IF EXISTS utxos_by_key_hash")
    total = 0
    rows = []
    for outpoint, amount, key_hash in installed.outputs:
        rows.append((outpoint.txid, outpoint.vout, amount, key_hash))
        total += amount
    conn.executemany("INSERT INTO utxos (txid, vout, amount, key_hash) VALUES (?, ?, ?, ?)",
                     rows)
    conn.execute("CREATE INDEX utxos_by_key_hash ON utxos (key_hash)")
    conn.executemany("UPDATE meta SET value = ? WHERE key = ?", [
        (installed.muhash.serialize(), "muhash"), (len(rows), "utxo_count"),
        (total, "utxo_total")])
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_BASE, height))
    conn.execute("INSERT INTO blocks (height, hash, header, body, certificate, committed_at) "
                 "VALUES (?, ?, ?, ?, ?, ?)", installed.block_row)
    conn.executemany("INSERT INTO blocks (height, hash, header, certificate) VALUES (?, ?, ?, ?)",
                     [tuple(row) for row in installed.handoff_rows if row[0] != height])
    masternode_tables.replace_rows(conn, installed.masternode_rows)
    conn.execute("DELETE FROM block_sets")
    conn.executemany("INSERT INTO block_sets (height, pubkey, weight) VALUES (?, ?, ?)",
                     [(h, pubkey, weight) for h, active_set in installed.handoffs
                      for pubkey, weight in active_set.items()])
