-- timecoin schema version 2: the masternode registry.
-- One row per registered masternode, as of meta.applied_seq (the journal's
-- registrations and collateral spends are folded in with the UTXO tables).
-- registered_height is NULL while the registration is pending (finalized,
-- not yet confirmed by a block); leaving = 1 once a finalized transaction
-- spent the collateral; deactivated = 1 once a block took it out of the
-- active set.
CREATE TABLE masternodes (
    pubkey            BLOB PRIMARY KEY,
    tier              TEXT NOT NULL,
    collateral_txid   BLOB NOT NULL,
    collateral_vout   INTEGER NOT NULL,
    reward_key_hash   BLOB NOT NULL,
    registration_txid BLOB,
    registered_height INTEGER,
    leaving           INTEGER NOT NULL DEFAULT 0,
    deactivated       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE UNIQUE INDEX masternodes_by_collateral ON masternodes (collateral_txid, collateral_vout);
-- The genesis registrations are written once the genesis is known (at the
-- first start, or at the first open after this migration); until then:
INSERT INTO meta VALUES ('masternodes_need_genesis', 1);
