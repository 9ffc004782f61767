-- timecoin schema version 4: blocks with their bodies and commit certificates.
-- The blocks table of version 1 holds each block's header (the genesis'
-- only, until blocks are committed); a committed block adds its whole
-- encoding (header, txids, reward transaction), its commit certificate and
-- when this node stored it. The genesis has neither body nor certificate.
-- transactions.block_height (version 1) is set, in the same transaction as
-- the block row, for every transaction the block confirms.
ALTER TABLE blocks ADD COLUMN body BLOB;
ALTER TABLE blocks ADD COLUMN certificate BLOB;
ALTER TABLE blocks ADD COLUMN committed_at REAL;
