"""Storage: the SQLite store (one writer thread, WAL), the finality journal, the schema."""
