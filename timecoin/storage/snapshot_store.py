"""The snapshot half of :class:`~timecoin.storage.store.Storage`
(``ISnapshotStorage``): cutting, serving and installing UTXO snapshots, every
statement on the storage writer thread (:mod:`timecoin.storage.snapshot_tables`)."""

from timecoin.storage import snapshot_tables


class SnapshotStorageMixin:
    """``ISnapshotStorage`` over a storage's writer thread (``_run``,
    ``_transaction`` and ``_conn`` of :class:`~timecoin.storage.store.Storage`)."""

    def save_snapshot(self, network_id, height, block_hash, chunk_outputs, masternodes=b"",
                      expected_set_hash=None):
        """Fire with the manifest of the set after block ``height``, stored."""
        def save():
            return self._transaction(
                lambda: snapshot_tables.write_snapshot(
                    self._conn, network_id, height, block_hash, chunk_outputs, masternodes,
                    expected_set_hash=expected_set_hash))
        return self._run(save, operation="snapshot_write")

    def snapshot_manifest(self, height=None):
        """Fire with ``(manifest bytes, masternodes bytes)`` of the stored
        snapshot at ``height`` (None: the newest), or None."""
        return self._run(snapshot_tables.read_manifest, self._conn, height,
                         operation="snapshot_read")

    def snapshot_chunk(self, height, index):
        """Fire with the bytes of a stored chunk, or None."""
        return self._run(snapshot_tables.read_chunk, self._conn, height, index,
                         operation="snapshot_read")

    def snapshot_heights(self):
        """Fire with the heights of the stored snapshots, newest first."""
        return self._run(snapshot_tables.snapshot_heights, self._conn,
                         operation="snapshot_read")

    def install_snapshot(self, installed):
        """Replace the node's state with ``installed`` in one transaction."""
        return self._run(self._transaction, snapshot_tables.install_snapshot, self._conn,
                         installed, operation="snapshot_install")

    def snapshot_base(self):
        """Fire with the height of the snapshot this database started from, or 0."""
        return self._run(snapshot_tables.snapshot_base, self._conn, operation="snapshot_read")

    def load_snapshot_base(self):
        """Fire with :func:`~timecoin.storage.snapshot_tables.read_base`'s answer."""
        return self._run(snapshot_tables.read_base, self._conn, operation="snapshot_read")
