-- The peer network's tables, defined once for both databases that hold them:
-- the node's database (schema version 1 includes this file) and the
-- peer-only database of timecoin.p2p.host.SynchronousDatabase.
-- Part of schema version 1: change them with a new numbered migration.

-- Peer addresses learned from seeds and address exchange.
CREATE TABLE IF NOT EXISTS peers (
    address      TEXT PRIMARY KEY,
    last_seen    REAL NOT NULL,
    last_success REAL,
    failures     INTEGER NOT NULL DEFAULT 0
);

-- Banned addresses; a ban expires at `until` (unix time).
CREATE TABLE IF NOT EXISTS bans (
    address  TEXT PRIMARY KEY,
    until    REAL NOT NULL,
    offences INTEGER NOT NULL DEFAULT 1,
    reason   TEXT NOT NULL
);
