-- timecoin schema version 3: the conflict sets this node voted on.
-- A conflict set is every pending transaction spending one outpoint. Before a
-- Snowball vote leaves the node, the set it answers about (its members, and
-- the member it votes for) is written here in the journal's group commit,
-- with the raw bytes of every member in pending_txs; a restarted node reloads
-- them and never votes for another member of a set it voted on. The rows of a
-- set go in the commit that journals the finalization of one of its members.
CREATE TABLE conflict_sets (
    prev_txid BLOB NOT NULL,
    prev_vout INTEGER NOT NULL,
    preferred BLOB NOT NULL,
    PRIMARY KEY (prev_txid, prev_vout)
) WITHOUT ROWID;
CREATE TABLE conflict_set_members (
    prev_txid BLOB NOT NULL,
    prev_vout INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    txid      BLOB NOT NULL,
    PRIMARY KEY (prev_txid, prev_vout, position)
) WITHOUT ROWID;
CREATE INDEX conflict_set_members_by_txid ON conflict_set_members (txid);
-- Raw bytes of the members, in the order they were first saved.
CREATE TABLE pending_txs (
    txid BLOB NOT NULL UNIQUE,
    raw  BLOB NOT NULL
);
