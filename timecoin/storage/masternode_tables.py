"""The ``masternodes`` table (schema version 2): the registry as of the
journal entries folded into the UTXO tables.

The fold of journal entries (:func:`timecoin.storage.records.plan_fold`)
carries their registry changes, written here in the same transaction as the
UTXO rows, with the same rules as :class:`~timecoin.ledger.registry.MasternodeRegistry`'s
``finalized``: a registration of a key not registered yet adds a pending row,
a spend of a registered collateral marks its row as leaving. The block layer
replaces the rows after applying a block (:func:`replace_rows`).
"""

from timecoin.ledger.registry import MasternodeRegistry, entry_from_registration
from timecoin.ledger.tx import KIND_MASTERNODE_REGISTER, decode_tx

_COLUMNS = ("pubkey, tier, collateral_txid, collateral_vout, reward_key_hash, "
            "registration_txid, registered_height, leaving, deactivated, missed_service")
_NEEDS_GENESIS = "masternodes_need_genesis"


def registration_row(raw):
    """The pending row a journal entry adds, or None if it registers nothing."""
    if raw[1] != KIND_MASTERNODE_REGISTER:
        return None
    return entry_from_registration(decode_tx(bytes(raw))).row()


def write_fold(conn, registered, spent):
    """Add the ``registered`` rows (keys registered already keep theirs), then
    mark the rows whose collateral is among ``spent`` ``(txid, vout)`` as leaving."""
    conn.executemany(f"INSERT OR IGNORE INTO masternodes ({_COLUMNS}) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", registered)
    conn.executemany("UPDATE masternodes SET leaving = 1 WHERE collateral_txid = ? AND "
                     "collateral_vout = ? AND leaving = 0", spent)


def needs_genesis(conn):
    """True until the genesis registrations are written (after a migration)."""
    return conn.execute("SELECT 1 FROM meta WHERE key = ?", (_NEEDS_GENESIS,)).fetchone() \
        is not None


def write_genesis(conn, genesis):
    """The genesis registrations, active from height 0 (inside a transaction)."""
    replace_rows(conn, MasternodeRegistry.from_genesis(genesis).rows())
    conn.execute("DELETE FROM meta WHERE key = ?", (_NEEDS_GENESIS,))


def read_rows(conn):
    """Every row, in public-key order (``MasternodeRegistry.from_rows`` takes them)."""
    return [tuple(row) for row in conn.execute(
        f"SELECT {_COLUMNS} FROM masternodes ORDER BY pubkey")]


def replace_rows(conn, rows):
    """Make the table hold exactly ``rows`` (inside a transaction)."""
    conn.execute("DELETE FROM masternodes")
    conn.executemany(f"INSERT INTO masternodes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     rows)
