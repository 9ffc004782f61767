-- timecoin schema version 5: the active set after each block that changed it.
-- For every committed block whose masternode_set_hash differs from the set
-- before it, the set after it (one row per member: pubkey and weight) is
-- written in the block's own transaction. With the stored headers and
-- certificates these are the hand-offs a finality proof carries, from the
-- genesis to any stored block (doc/proofs.md). A database of version 4
-- holds no such rows; blocks it committed that changed the set have no
-- stored set, and no proof can be built above them (said so, by height).
CREATE TABLE block_sets (
    height INTEGER NOT NULL,
    pubkey BLOB NOT NULL,
    weight INTEGER NOT NULL,
    PRIMARY KEY (height, pubkey)
) WITHOUT ROWID;
