"""The ``blocks`` rows of committed blocks (schema version 4) and the
confirmations they write.

A committed block is written in one transaction with everything it implies:
its row (header, body, certificate), the journal entry of its reward
transaction, ``block_height`` on each transaction it confirms, and the
masternode registry's rows after it. A crash leaves either all of it or none.
"""

from timecoin.storage import masternode_tables


def write_block(conn, block_row, records, confirmed_txids, masternode_rows):
    """Write one committed block (inside a transaction).

    ``block_row``: ``(height, hash, header, body, certificate, committed_at)``;
    ``records``: journal ``(seq, txid, raw, spent, finalized_at, finality_ms)``
    rows the block adds (its reward transaction); ``confirmed_txids``: every
    txid the block confirms (the reward's included); ``masternode_rows``: the
    registry after the block, or None to leave the table as it is.
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
