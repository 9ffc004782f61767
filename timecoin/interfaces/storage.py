"""Durable storage and the finality journal written to it."""

from zope.interface import Attribute, Interface


class IStorage(Interface):
    """Durable storage on one writer thread; every method returns a Deferred."""

    notes = Attribute("Lines worth logging about the last open (schema migrations).")
    path = Attribute("The database file's path.")

    def open(genesis):
        """Open or create the database, replay the journal; fire with its ``ChainMeta``."""

    def load_utxos(outpoints):
        """Fire with ``(outpoint, amount, key_hash)`` rows for those that exist."""

    def append_journal(records, conflict_sets=None):
        """Commit finality records atomically; fire once they are durable.

        ``conflict_sets`` (a ``ConflictSetBatch``) are written in the same
        transaction, before the records; each record's finalization removes
        the stored sets of the inputs it spends.
        """

    def apply_journal(up_to_seq, summary=None):
        """Fold journal entries up to ``up_to_seq`` into the UTXO tables atomically.

        ``summary`` (MuHash, count, total as of ``up_to_seq``, from the state
        machine) spares recomputing the set hash when it agrees with the entries.
        """

    def get_transaction(txid):
        """Fire with the stored record of a finalized transaction, or None."""

    def block_transactions(height):
        """Fire with ``{txid: raw}`` of the stored transactions block ``height``
        confirmed (its reward transaction's included)."""

    def journal_page(after_seq, limit, up_to_seq):
        """Fire with ``[(seq, raw)]`` of journal entries after ``after_seq``, up to
        ``up_to_seq``, that no block confirmed yet, at most ``limit`` of them."""

    def utxos_for(key_hash):
        """Fire with the stored unspent ``(outpoint, amount)`` of one address."""

    def load_masternodes():
        """Fire with the masternode registry's rows as of the applied journal
        entries (``MasternodeRegistry.from_rows`` takes them)."""

    def save_masternodes(rows):
        """Replace the masternode registry's rows atomically (after a block)."""

    def save_block(block_row, records, confirmed_txids, masternode_rows=None,
                   active_set=None):
        """Write a committed block in one transaction with what it implies:
        ``block_row`` ``(height, hash, header, body, certificate, committed_at)``,
        its journal ``records`` (the reward transaction's), ``block_height`` of
        each of ``confirmed_txids``, the registry's rows after it (None:
        unchanged) and ``active_set``, ``{pubkey: weight}`` after the block if
        the block changed the active set (None if it did not)."""

    def load_block_sets():
        """Fire with ``[(height, {pubkey: weight})]``, in height order: the
        active set after each stored block that changed it."""

    def load_blocks(after_height=0):
        """Fire with ``[(height, body, certificate)]`` of the committed blocks
        above ``after_height``, in order."""

    def load_unconfirmed():
        """Fire with ``[(seq, raw, [(amount, key_hash)])]`` of the journal entries
        no block confirmed yet, in journal order (the raw transaction and its
        undo data)."""

    def backup(directory=None):
        """Copy the database online (SQLite's backup API, on the writer thread)
        into ``directory`` (default: ``backups`` beside the database); fire
        with ``(path, bytes)`` of the copy."""

    def run_db(fn):
        """Run ``fn(conn)`` on the writer thread; fire with its result."""

    def timing_snapshot():
        """The durations the writer thread recorded so far, at once (no
        Deferred, no wait on the writer): a ``timecoin.storage.timings.TimingSnapshot``
        of per-operation histograms and WAL checkpoint totals."""

    def close_now():
        """Stop the writer thread and close the database from the calling
        thread (start-up abandoned, the reactor not running)."""

    def close():
        """Finish queued work and stop the writer thread."""


class ISnapshotStorage(Interface):
    """The UTXO snapshots a node serves, and the install of a fetched one
    (schema version 6, doc/sync.md); every call fires a Deferred."""

    def save_snapshot(network_id, height, block_hash, chunk_outputs, masternodes=b"",
                      expected_set_hash=None):
        """Cut the set after the committed block ``height`` into chunks of
        ``chunk_outputs`` outputs and store it with ``masternodes`` (the
        registry's rows after the block, encoded); the newest two are kept.
        Fire with its ``SnapshotManifest``; fail (nothing stored) if its set
        hash is not ``expected_set_hash`` (the header's) when given."""

    def snapshot_manifest(height=None):
        """Fire with ``(manifest bytes, masternodes bytes)`` of the stored
        snapshot at ``height`` (None: the newest), or None."""

    def snapshot_chunk(height, index):
        """Fire with the bytes of chunk ``index`` of the snapshot at ``height``, or None."""

    def snapshot_heights():
        """Fire with the heights of the stored snapshots, newest first."""

    def install_snapshot(installed):
        """Replace a fresh database's UTXO set, summary, registry rows and
        hand-offs with a fetched and checked snapshot and store its block,
        in one transaction (``timecoin.storage.snapshot_tables.install_snapshot``)."""

    def snapshot_base():
        """Fire with the height of the snapshot the database was installed from, or 0."""

    def load_snapshot_base():
        """Fire with ``(base height, [(height, header bytes, certificate bytes)])``
        of the snapshot block and the hand-off blocks below it, or None if
        the database holds every block from the genesis."""


class IJournal(Interface):
    """The finality journal: builds the records of finalized transactions and
    commits them to storage in groups; remembers the recently finalized ones."""

    committed_seq = Attribute("Sequence of the last durable record.")
    last_error = Attribute("Message of the last failed commit, None once one succeeds.")
    backlog = Attribute("Number of records queued and not yet committed.")

    def record(tx, spent, arrived_at):
        """A new record for finalized ``tx``, with the next sequence number.

        ``spent``: the UTXO entries its inputs spend (the undo data);
        ``arrived_at``: when ``tx`` arrived, on the journal's clock.
        """

    def append(record, notify=True):
        """Queue ``record``; with ``notify``, a Deferred fires once it is durable."""

    def committing(txid):
        """The record of ``txid`` if it is queued or being committed, else None."""

    def recent(txid):
        """The record of ``txid`` if it was committed lately, else None."""

    def find(txid):
        """The record of ``txid`` if it is committing or committed lately, else None."""

    def forget(txid):
        """``txid`` was unwound (a safety incident): no longer found here."""

    def append_block(record, block_row, confirmed_txids, masternode_rows, active_set=None):
        """Queue a committed block behind the records queued so far, written alone
        by ``IStorage.save_block`` with ``record`` (its reward transaction's, or
        None) and ``active_set`` (the set after it, if it changed); fire once
        it is durable."""

    def save_conflict_sets(batch):
        """Queue a ``ConflictSetBatch`` (sets about to be voted on, with their
        members' raw bytes) for the next group commit; fire once it is durable."""

    def drain():
        """A Deferred that fires once everything queued so far is committed."""

    def stop():
        """Cancel a pending retry."""


class IStorageCheck(Interface):
    """The start-up check of the database against itself (indexes, UTXO rows
    and set hash, journal records), done during open for small sets and on a
    thread of its own for large ones."""

    state = Attribute("'verifying', 'ok' or 'damaged'.")
    progress = Attribute("``(outputs checked, outputs expected)`` so far.")
    problem = Attribute("One line naming the damage once ``state`` is 'damaged', else None.")

    def start(on_damage):
        """Begin (if there is anything left to check); ``on_damage(line)`` is
        called on the reactor thread if damage is found."""

    def stop():
        """Stop checking (the node is stopping); fires once the thread is idle."""

    def stop_now():
        """Stop checking and end the thread from the calling thread, waiting
        for it (start-up abandoned, the reactor not running)."""
