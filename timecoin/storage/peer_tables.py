"""The ``peers`` and ``bans`` tables, defined once in ``schema/peer_tables.sql``.

The node's database gets them with schema version 1 (whose file includes
``peer_tables.sql``); the peer network's own database, for programs without a
node database, gets them from :func:`create_peer_tables`.
"""

from importlib import resources

#: The DDL of the peer network's tables (``CREATE TABLE IF NOT EXISTS``).
PEER_TABLES = resources.files("timecoin.storage").joinpath(
    "schema", "peer_tables.sql").read_text()


def create_peer_tables(conn):
    """Create the ``peers`` and ``bans`` tables on ``conn`` unless they exist."""
    conn.executescript(PEER_TABLES)
