"""The ``blocks`` rows of committed blocks (schema version 4), the
confirmations they write and the active sets after the blocks that changed
it (``block_sets``, version 5).

A committed block is written in one transaction with everything it implies:
its row (header, body, certificate), the journal entry of its reward
transaction, ``block_height`` on each transaction it confirms, the
masternode registry's rows after it and, if the block changed the active
set, that set. A crash leaves either all of it or none.
"""

from timecoin.storage import masternode_tables


def write_block(conn, block_row, records, confirmed_txids, masternode_rows, active_set=None):
    """Write one committed block (inside a transaction).

    ``block_row``: ``(height, hash, header, body, certificate, committed_at)``;
    ``records``: journal ``(seq, txid, raw, spent, finalized_at, finality_ms)``
    rows the block adds (its reward transaction); ``confirmed_txids``: every
    txid the block confirms (the reward's included); ``masternode_rows``: the
    registry after the block, or None to leave the table as it is;
    ``active_set``: ``{pubkey: weight}`` after a block that changed the set,
    None after one that did not.
    """
    height = block_row[0]
    conn.execute("INSERT INTO blocks (height, hash, header, body, certificate, committed_at) "
                 "VALUES (?, ?, ?, ?, ?, ?)", block_row)
    conn.executemany(
        "INSERT INTO transactions (seq, txid, raw, spent, finalized_at, finality_ms)"
        " VALUES (?, ?, ?, ?, ?, ?)", records)
    conn.executemany("UPDATE transactions SET block_height = ? WHERE txid = ?",
                     [(height, txid) for txid in confirmed_txids])
    if masternode_rows is not None:
        masternode_tables.replace_rows(conn, masternode_rows)
    if active_set is not None:
        conn.executemany("INSERT INTO block_sets (height, pubkey, weight) VALUES (?, ?, ?)",
                         [(height, pubkey, weight) for pubkey, weight in active_set.items()])


def read_block_sets(conn):
    """``[(height, {pubkey: weight})]`` of the stored sets after the blocks
    that changed the active set, in height order."""
    sets = {}
    for height, pubkey, weight in conn.execute(
            "SELECT height, pubkey, weight FROM block_sets ORDER BY height, pubkey"):
        sets.setdefault(height, {})[bytes(pubkey)] = weight
    return sorted(sets.items())


def read_blocks(conn, after_height=0):
    """``[(height, body, certificate)]`` of the committed blocks above
    ``after_height``, in height order (for replay at start)."""
    return [tuple(row) for row in conn.execute(
        "SELECT height, body, certificate FROM blocks WHERE height > ? AND body IS NOT NULL "
        "ORDER BY height", (after_height,))]


def read_unconfirmed(conn):
    """``[(seq, raw, spent)]`` of the journal entries no block confirmed, in
    journal order."""
    return [(seq, bytes(raw), bytes(spent)) for seq, raw, spent in conn.execute(
        "SELECT seq, raw, spent FROM transactions WHERE block_height IS NULL ORDER BY seq")]


def block_height_of(conn, txid):
    """The height of the block that confirmed ``txid``, or None."""
    row = conn.execute("SELECT block_height FROM transactions WHERE txid = ?",
                       (txid,)).fetchone()
    return row[0] if row is not None else None
