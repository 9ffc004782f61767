-- timecoin schema version 6: certified UTXO snapshots this node serves.
-- Every [sync] snapshot_interval blocks the UTXO set after the block is cut
-- into chunks (timecoin.ledger.snapshot) and stored here, on the writer
-- thread, in its own transaction after the block's; the newest two are kept
-- (a peer fetching the older one when a new one is cut can still finish).
-- masternodes: the registry's rows after the block, encoded
-- (timecoin.ledger.snapshot_registry), served with the manifest.
-- A node that joined from a snapshot records its height in meta
-- ('snapshot_base'): it holds no blocks below it.
CREATE TABLE snapshots (
    height     INTEGER PRIMARY KEY,
    block_hash BLOB NOT NULL,
    manifest   BLOB NOT NULL,
    masternodes BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE snapshot_chunks (
    height INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (height, idx)
) WITHOUT ROWID;
