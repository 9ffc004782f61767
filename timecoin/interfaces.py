"""The components of a timecoin node, as ``zope.interface`` Interfaces.

The node (:mod:`timecoin.node.service`) composes one provider of each. The sans-I/O
cores (UTXO state, mempool, finality engines) are driven by method calls and an
injected clock; the I/O components (storage, peer network, API) return
Deferreds and never block the reactor thread.
"""

from zope.interface import Attribute, Interface


class IUtxoState(Interface):
    """The UTXO state machine: Unspent -> Locked -> SpentPending -> SpentFinalized -> Confirmed.

    Holds a bounded cache of outputs over storage; outputs that are locked,
    pending, or changed since the last flush are pinned in memory. Synchronous:
    callers load missing outputs from storage first (:meth:`missing`, :meth:`load`).
    """

    count = Attribute("Number of finalized unspent outputs in the set.")
    total_amount = Attribute("Sum, in units, of finalized unspent outputs.")

    def missing(outpoints):
        """The outpoints that are not in memory and must be loaded from storage."""

    def load(rows):
        """Insert ``(outpoint, amount, key_hash)`` rows read from storage as Unspent."""

    def check_inputs(tx):
        """Return the inputs' total in units, or raise ``TxRejected`` with the reason."""

    def lock(tx):
        """Lock every input of ``tx`` for it, atomically, until the lock expires."""

    def mark_pending(txid):
        """Locked -> SpentPending: the network is voting on ``txid``."""

    def finalize(tx, seq):
        """Spend the inputs and create the outputs of ``tx``, journal sequence ``seq``."""

    def release(txid):
        """Roll back the locks of ``txid``: its inputs become Unspent again."""

    def expire_locks():
        """Release locks past their expiry; return the txids released."""

    def confirm(outpoints):
        """SpentFinalized -> Confirmed, once a block checkpoints the spend."""

    def applied(seq):
        """Storage now reflects every journal entry up to ``seq``: unpin them."""

    def set_hash():
        """The hex digest of the incremental MuHash3072 of the finalized set."""


class IMempool(Interface):
    """Pending transactions bounded by count and bytes, ordered by fee rate."""

    size = Attribute("Number of transactions held.")
    bytes = Attribute("Sum of their encoded sizes.")
    max_bytes = Attribute("The byte bound.")

    def add(tx, fee):
        """Admit ``tx``; return the txids evicted for it, or raise ``TxRejected``."""

    def remove(txid):
        """Forget ``txid``; return its entry or None."""

    def get(txid):
        """The entry for ``txid`` or None."""

    def __contains__(txid):
        """True if ``txid`` is held."""

    def min_fee_rate():
        """The lowest fee rate (units/byte) a new transaction must beat to enter."""

    def reject(txid, reason):
        """Remember ``txid`` as rejected (with a time-to-live)."""

    def rejection(txid):
        """The reason ``txid`` was rejected recently, or None."""


class ISignatureVerifier(Interface):
    """Checks the Ed25519 signatures of transactions, on the reactor thread or
    on worker processes; results come back on the reactor thread."""

    workers = Attribute("Number of worker processes (0: verifies on the calling thread).")
    restarts = Attribute("Times a worker ended unasked since start (each replaced, up to a limit).")

    def start():
        """Start the workers, if any."""

    def verify(tx):
        """Fire with None if every input's signature verifies; fail with
        ``TxRejected("bad-signature")`` if one does not."""

    def pending():
        """Number of transactions handed in and not yet reported."""

    def stop():
        """Report what was handed in, then end the workers; fires when done."""


class IFinality(Interface):
    """Decides each transaction: finalized or rejected.

    A lone devnet masternode decides alone; the Snowball engine polls the
    masternodes. Either reports through the listeners added here.
    """

    def start(tx):
        """Begin deciding ``tx`` (already validated, its inputs locked)."""

    def cancel(txid):
        """Stop deciding ``txid`` (evicted or expired); no decision is reported."""

    def add_listener(callback):
        """``callback(txid, accepted, reason)`` is called once per decision."""

    def in_flight():
        """Number of transactions being decided."""


class IBlockConsensus(Interface):
    """The chain of blocks that checkpoint finalized transactions."""

    def height():
        """The best block's height."""

    def best_block_hash():
        """The best block's hash (bytes)."""

    def get_block(height_or_hash):
        """A dict of the block's header fields and ``txids``, or None."""

    def masternodes():
        """The registered masternodes: dicts of pubkey, address, tier, weight, active."""


class IStorage(Interface):
    """Durable storage on one writer thread; every method returns a Deferred."""

    def open(genesis):
        """Open or create the database, replay the journal; fire with its ``ChainMeta``."""

    def load_utxos(outpoints):
        """Fire with ``(outpoint, amount, key_hash)`` rows for those that exist."""

    def append_journal(records):
        """Commit finality records atomically; fire once they are durable."""

    def apply_journal(up_to_seq, summary=None):
        """Fold journal entries up to ``up_to_seq`` into the UTXO tables atomically.

        ``summary`` (MuHash, count, total as of ``up_to_seq``, from the state
        machine) spares recomputing the set hash when it agrees with the entries.
        """

    def get_transaction(txid):
        """Fire with the stored record of a finalized transaction, or None."""

    def utxos_for(key_hash):
        """Fire with the stored unspent ``(outpoint, amount)`` of one address."""

    def close():
        """Finish queued work and stop the writer thread."""


class IPeerNetwork(Interface):
    """The peer-to-peer network: connections, relay and bans."""

    def broadcast_tx(tx, push=False):
        """Announce ``tx`` to every connected peer that may not have it
        (``push``: send it whole rather than by txid)."""

    def peer_info():
        """A list of dicts as ``getpeerinfo`` returns."""

    def peer_count():
        """Number of connected, handshaken peers."""
