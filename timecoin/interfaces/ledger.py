"""The sans-I/O ledger components: UTXO state, mempool, the chain."""

from zope.interface import Attribute, Interface


class IUtxoState(Interface):
    """The UTXO state machine: Unspent -> Locked -> SpentPending -> SpentFinalized -> Confirmed.

    Holds a bounded cache of outputs over storage; outputs that are locked,
    pending, or changed since the last flush are pinned in memory. Synchronous:
    callers load missing outputs from storage first (:meth:`missing`, :meth:`load`).
    """

    count = Attribute("Number of finalized unspent outputs in the set.")
    total_amount = Attribute("Sum, in units, of finalized unspent outputs.")
    lock_timeout = Attribute("Seconds a lock holds before it expires.")
    cache_hits = Attribute("Outpoints ``missing`` found in memory (a running total).")
    cache_misses = Attribute("Outpoints ``missing`` did not find in memory (a running total).")
    cache_evictions = Attribute("Clean outputs evicted to keep the cache bound (a running total).")

    def __len__():
        """Number of outputs held in memory (pinned and cached)."""

    def get(outpoint):
        """The in-memory entry of ``outpoint`` (amount, key_hash, status, lock_txid), or None."""

    def missing(outpoints):
        """The outpoints that are not in memory and must be loaded from storage."""

    def load(rows):
        """Insert ``(outpoint, amount, key_hash)`` rows read from storage as Unspent."""

    def check_inputs(tx, allow_locked=False):
        """Return the inputs' total in units, or raise ``TxRejected`` with the reason
        (``allow_locked``: inputs locked by a rival transaction are admitted)."""

    def lock(tx, pending=False):
        """Lock every input of ``tx`` for it, atomically, until the lock expires
        (``pending``: straight to SpentPending)."""

    def lock_holder(outpoint):
        """The txid holding ``outpoint``'s lock, or None."""

    def mark_pending(txid):
        """Locked -> SpentPending: the network is voting on ``txid``."""

    def finalize(tx, seq):
        """Spend the inputs and create the outputs of ``tx``, journal sequence ``seq``."""

    def unwind(tx, spent):
        """Undo the finalization of ``tx`` (a safety incident): its outputs
        leave the set, its inputs (``spent``: ``[(amount, key_hash)]``) are
        unspent again; a spender of its outputs is unwound first."""

    def release(txid):
        """Roll back the locks of ``txid``: its inputs become Unspent again."""

    def expire_locks(keep=None):
        """Release locks past their expiry; return the txids released. A txid
        for which ``keep(txid)`` is true keeps its locks, with no expiry any more."""

    def confirm(outpoints):
        """SpentFinalized -> Confirmed, once a block checkpoints the spend."""

    def applied(seq):
        """Storage now reflects every journal entry up to ``seq``: unpin them."""

    def summary_at(seq):
        """``(MuHash, count, total)`` right after journal entry ``seq``, while
        storage has not applied it; else None."""

    def overlay(key_hash, stored):
        """Merge stored ``(outpoint, amount)`` rows of one address with memory:
        ``(outpoint, amount, UtxoStatus)`` of its live outputs."""

    def set_hash():
        """The hex digest of the incremental MuHash3072 of the finalized set."""


class IMempool(Interface):
    """Pending transactions bounded by count and bytes, ordered by fee rate.

    It also keeps what derives from the pending set: the contenders (double
    spends of a pending transaction, admitted without locks for finality to
    decide between) and the pending outputs of each address.
    """

    size = Attribute("Number of transactions held.")
    bytes = Attribute("Sum of their encoded sizes.")
    max_bytes = Attribute("The byte bound.")

    def add(tx, fee, contender=False, evictable=None):
        """Admit ``tx``; return the txids evicted for it, or raise ``TxRejected``.

        ``contender``: ``tx`` double-spends a pending transaction and holds no locks.
        ``evictable(txid)``: True if that entry may be evicted to make room
        (None: any); an entry being decided by finality must never be.
        """

    def txids():
        """The txids of the pending transactions held."""

    def remove(txid):
        """Forget ``txid``; return its entry or None."""

    def get(txid):
        """The entry for ``txid`` (``tx``, ``fee``, ``fee_rate``, ``added_at``) or None."""

    def contenders():
        """The txids admitted as contenders, still pending."""

    def is_contender(txid):
        """True if ``txid`` is a pending contender."""

    def incoming(key_hash):
        """Sum, in units, of the pending outputs paying ``key_hash``."""

    def __contains__(txid):
        """True if ``txid`` is held."""

    def min_fee_rate():
        """The lowest fee rate (units/byte) a new transaction must beat to enter."""

    def reject(txid, reason):
        """Remember ``txid`` as rejected (with a time-to-live)."""

    def rejection(txid):
        """The reason ``txid`` was rejected recently, or None."""

    def expire_rejections():
        """Forget rejections and drops past their time-to-live."""

    def note_dropped(txid, reason):
        """Remember that ``txid`` left without a decision (evicted, or expired
        before any poll), with a time-to-live; it may enter again."""

    def drop_reason(txid):
        """Why ``txid`` was dropped recently (and is not held now), or None."""


class IBlockConsensus(Interface):
    """The chain of blocks that checkpoint finalized transactions."""

    def height():
        """The best block's height."""

    def best_block_hash():
        """The best block's hash (bytes)."""

    def get_block(height_or_hash):
        """A dict of the block's header fields and ``txids``, or None."""

    registry = Attribute("The IMasternodeRegistry the chain's blocks drive.")

    def block_at(height):
        """The committed ``Block`` at ``height`` (>= 1), or None."""

    def certificate_at(height):
        """The commit certificate of the block at ``height`` (>= 1), or None."""

    def get_block_header(height_or_hash):
        """The header fields and ``commit`` (the certificate's signatures), or None."""

    def append(block, certificate, confirmed_txs, last_signers=None):
        """Add the next block, applying ``confirmed_txs`` to the registry;
        raise ``BlockError`` (nothing changed) if it does not follow.
        ``last_signers``: the pubkeys that signed the block's carried commit
        (None: it carries none), counted for missed service."""

    def restore(block, certificate, last_signers=None, set_after=None):
        """Replay at start: add the next stored block without applying it to the
        registry (the stored registry rows are the state after it);
        ``set_after`` is the stored active set after it if it changed the set."""

    def restored():
        """The last stored block is replayed: the set after it is the registry's."""

    def active_set_at(height):
        """``{pubkey: weight}``: the active set after the block at ``height``
        (0: the genesis set), the set that signs ``height + 1``; None if this
        node does not know it (blocks stored before schema version 5)."""

    def missed_candidates():
        """``[(pubkey, blocks missed)]``: active masternodes absent from the
        carried commits of ``MISSED_SERVICE_BLOCKS`` or more consecutive blocks."""

    base = Attribute("The height of the snapshot the chain started from (0: the "
                     "genesis); no block below it is held.")

    def start_at(block, certificate, signing_set=None):
        """Start an empty chain at the block of an installed snapshot;
        ``signing_set`` is the active set that signed it (None: the genesis's)."""

    def height_of_tx(txid):
        """The height of the block that confirmed ``txid`` if the chain has it
        in memory (blocks committed or replayed in this run), else None."""

    def masternodes():
        """The registered masternodes: the registry's ``describe`` dicts with
        ``online`` (this node hears from it)."""


class IBlockLedger(Interface):
    """The finalized transactions no block confirmed yet, and the UTXO set hash
    at the last block: what the next block holds, and whether a proposed one is
    right (sans I/O; ``timecoin.ledger.checkpoint``)."""

    def add(seq, tx, spent):
        """``tx`` finalized here as journal entry ``seq``, spending ``spent``
        (``[(amount, key_hash)]`` per input)."""

    def restore(items):
        """At start: ``items`` (``Unconfirmed``) were finalized before, and no
        block confirmed them."""

    def __contains__(txid):
        """True if ``txid`` is finalized here and not confirmed yet."""

    def __len__():
        """How many finalized transactions wait for a block."""

    network = Attribute("The Network whose blocks these are.")

    def checkpoint_hash():
        """The UTXO set hash at the last block (bytes)."""

    def build(round_, proposer, time, deactivations=(), decided=(), last_commit=b""):
        """The next block (a ``Block``): the unconfirmed transactions in
        finality order, then at most one member of a stalled conflict set
        (``decided``: ``Unconfirmed`` items), its reward, the set hashes after
        it; it deactivates the active masternodes among ``deactivations`` and
        those the chain shows absent for missed service, and carries
        ``last_commit`` (the best block's encoded certificate)."""

    def unconfirmed(txid):
        """The ``Unconfirmed`` of ``txid`` (finalized here, no block yet), or None."""

    def spenders():
        """``{outpoint: txid}`` of the inputs of the unconfirmed transactions."""

    def remove(txid):
        """A safety incident unwinds ``txid``: it leaves the unconfirmed list."""

    def check(block, proposer_of, now, justified=None, decided=None, certified=False,
              verify_last_commit=None):
        """Raise ``BlockError`` unless ``block`` is the valid next block here
        (``MissingTransactions`` if only some transactions are not here yet);
        ``proposer_of(round)`` names the proposer of a round at its height;
        every deactivation must be active and ``justified(pubkey)``; the
        missed-service list must be the chain's; ``decided`` maps txids of
        stalled-set members valid here to ``Unconfirmed``; ``certified``: the
        block's certificate verified here, and ``decided`` holds all its
        transactions not finalized here (no bound on their number);
        ``verify_last_commit(block)`` raises ``BlockError`` for a bad carried
        commit (None: a block that carries one is refused)."""

    def transactions(block):
        """The decoded transactions ``block`` confirms, in order (reward excluded)."""

    def spent_outpoints(block):
        """Every outpoint the block's transactions spend."""

    def applied(block):
        """``block`` is committed: its transactions leave the unconfirmed list."""


class IMasternodeRegistry(Interface):
    """The registered masternodes and the active set, sans I/O.

    Finalized transactions make registrations and deregistrations pending;
    only a block (:meth:`apply_block`) changes the active set.
    """

    def check_registration(tx):
        """Raise ``TxRejected("masternode-registered")`` if ``tx`` registers a
        masternode key that is registered already (pending, active or leaving),
        unless it re-announces a masternode deactivated for missed service
        (the registration spends that masternode's collateral)."""

    def finalized(tx):
        """Record what finalized ``tx`` changes: a pending registration, or a
        registered collateral spent (its masternode is then leaving); True if
        anything changed."""

    def apply_block(height, confirmed_txs, deactivations=(), missed=()):
        """Apply a block at ``height``: confirmed registrations join the active
        set, confirmed collateral spends remove their masternodes, and the
        ``deactivations`` (public keys, evidence) and ``missed`` (missed
        service) leave it; masternodes deactivated on evidence
        ``DEACTIVATION_BLOCKS`` blocks before rejoin it (those deactivated for
        missed service rejoin by announcing again). Returns
        ``{"joined", "left", "deactivated", "rejoined"}`` lists of public keys."""

    def active_set():
        """``{pubkey: weight}`` of the active set, in public-key order."""

    def masternode_set_hash():
        """The canonical 32-byte hash of the active set (a block header field)."""

    def get(pubkey):
        """The entry of ``pubkey`` (a ``MasternodeEntry``) or None."""

    def collateral_of(outpoint):
        """The public key whose collateral ``outpoint`` is, or None."""

    def entries():
        """Every entry, pending and leaving ones too, in public-key order."""

    def rows():
        """The entries as storage rows."""

    def describe(network_id):
        """Dicts of ``pubkey, address, tier, weight, collateral, reward_address,
        registered_height, active, leaving`` for every entry."""

    def __len__():
        """The number of entries."""


class ISnapshotAssembly(Interface):
    """Rebuilds a certified UTXO snapshot from chunks fetched from peers, in any
    order; sans I/O (doc/proofs.md). Refusals raise ``SnapshotError`` with a
    ``reason`` and an ``index``, and keep nothing of the refused chunk."""

    manifest = Attribute("The SnapshotManifest being assembled (checked against the header).")

    def missing():
        """The indexes of the chunks not added yet, ascending."""

    def add(index, data):
        """Check chunk ``index`` (its encoded bytes) against the manifest and
        keep its part of the set hash; return its ``(OutPoint, amount,
        key_hash)`` outputs, for storage."""

    def finish():
        """Once every chunk is in: the MuHash digest of the whole set, equal to
        the header's ``utxo_set_hash``, or ``SnapshotError``."""
