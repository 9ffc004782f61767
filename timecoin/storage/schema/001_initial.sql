-- timecoin schema version 1.
-- Key/value facts about the chain and the UTXO tables' position in the journal.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- The finality journal: one row per finalized transaction, in finality order.
-- Committed in small group commits before a transaction is reported finalized.
CREATE TABLE transactions (
    seq          INTEGER PRIMARY KEY,
    txid         BLOB NOT NULL UNIQUE,
    raw          BLOB NOT NULL,
    -- undo data: amount (u64) and key hash (20 bytes) of each spent input
    spent        BLOB NOT NULL,
    finalized_at REAL NOT NULL,
    finality_ms  REAL,
    block_height INTEGER
);

-- The finalized, unspent outputs as of meta.applied_seq.
CREATE TABLE utxos (
    txid     BLOB NOT NULL,
    vout     INTEGER NOT NULL,
    amount   INTEGER NOT NULL,
    key_hash BLOB NOT NULL,
    PRIMARY KEY (txid, vout)
) WITHOUT ROWID;
CREATE INDEX utxos_by_key_hash ON utxos (key_hash);

CREATE TABLE blocks (
    height INTEGER PRIMARY KEY,
    hash   BLOB NOT NULL UNIQUE,
    header BLOB NOT NULL
);

-- The peer network's peers and bans tables.
-- include: peer_tables.sql
