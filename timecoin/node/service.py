"""The node: the ledger components composed into one Twisted service.

``Node`` owns the UTXO state machine, the mempool, the finality component, the
journal writer and the storage; the API and peer listeners are its children.
It runs the validation pipeline (:meth:`Node.submit`) and turns finality
decisions into journal records; its read side is a
:class:`~timecoin.node.queries.NodeQueries` (``node.queries``). Stopping is
written out in order: stop listening, close peers, stop consensus, flush
storage, stop the DB thread. All time comes from the injected reactor.
"""

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

import timecoin
from timecoin.finality.events import FinalityEventPublisher
from timecoin.finality.local import LocalFinality
from timecoin.interfaces import (
    IBlockApplyHost,
    ICatchupHost,
    IDaemonNode,
    IFinalityHost,
    IListeningService,
    INodeApi,
    INodeComponents,
)
from timecoin.ledger.blockchain import BlockChain
from timecoin.ledger.checkpoint import BlockLedger
from timecoin.ledger.mempool import Mempool
from timecoin.ledger.registry import MasternodeRegistry
from timecoin.ledger.tx import (
    MIN_FEE_RATE,
    PERMANENT_REJECTIONS,
    TxRejected,
    check_structure,
    decode_tx,
)
from timecoin.ledger.utxo import UtxoSet
from timecoin.node.flush import UtxoFlusher
from timecoin.node.incidents import unwind_finalized
from timecoin.node.metrics import NodeMetrics
from timecoin.node.queries import NodeQueries
from timecoin.node.restore import conflict_set_batch, readmit
from timecoin.node.verify import InlineVerifier
from timecoin.p2p.host import IPeerHost
from timecoin.proofs.source import ChainProofs
from timecoin.storage.background import StorageCheck
from timecoin.storage.journal import JournalWriter

#: Approximate memory of one cached output, to turn cache_size_mb into entries.
CACHE_ENTRY_BYTES = 400
MAINTENANCE_INTERVAL = 1.0


@implementer(IPeerHost, IFinalityHost, ICatchupHost, INodeApi, INodeComponents, IDaemonNode,
             IBlockApplyHost)
class Node(MultiService):
    """A timecoin full node (see the module docstring)."""

    log = Logger()
    #: Called once the daemon stopped (removes the API cookie), or None.
    cookie_cleanup = None
    #: The IFinalitySync pulling other masternodes' journals, once assembled.
    finality_sync = None
    #: Called with one line if the storage check finds damage (the daemon
    #: exits with it), or None: the node then refuses new transactions.
    on_storage_damage = None

    def __init__(self, reactor, network, genesis, config, storage, meta, identity,
                 finality=None, verifier=None, storage_check=None, registry=None):
        super().__init__()
        self.reactor = reactor
        self.network = network
        self.genesis = genesis
        self.genesis_hash = genesis.hash
        self.config = config
        self.storage = storage
        self.identity = identity
        self.version = timecoin.__version__
        cache_entries = config["storage"]["cache_size_mb"] * 2**20 // CACHE_ENTRY_BYTES
        self.state = UtxoSet(reactor, cache_entries, config["state"]["lock_timeout_s"],
                             meta.muhash, meta.count, meta.total_amount)
        self.mempool = Mempool(reactor, config["mempool"]["max_bytes"],
                               config["mempool"]["max_count"])
        self.journal = JournalWriter(reactor, storage, self._journal_committed, meta.last_seq)
        #: The IMasternodeRegistry: the stored one (``meta.masternodes``), else
        #: the genesis registrations.
        self.registry = registry if registry is not None else registry_from_meta(genesis, meta)
        self.chain = BlockChain(genesis, self._masternode_online, self.registry)
        #: The IBlockLedger: finalized transactions waiting for a block.
        self.block_ledger = BlockLedger(network, self.chain, meta.muhash)
        self.proofs = ChainProofs(genesis)
        #: The IBlockService committing blocks, once assembled.
        self.block_service = None
        #: The node's snapshots (ISnapshotSource), once assembled.
        self.snapshots = None
        #: The height of the snapshot the database was installed from (0: none),
        #: known before the stored chain is replayed.
        self.snapshot_base = meta.snapshot_base
        self.finality = finality if finality is not None else LocalFinality(reactor)
        self.verifier = verifier if verifier is not None else InlineVerifier()
        self.finality.add_listener(self._decided)
        self.peer_network = None
        self.events = FinalityEventPublisher()
        self.started_at = reactor.seconds()
        #: Safety incidents seen (a certified block conflicting with a
        #: transaction finalized here), and the line naming the last one.
        self.safety_incidents = 0
        self.safety_incident = None
        #: txid -> reason of the finalized transactions a safety incident unwound.
        self.unwound = {}
        self.queries = NodeQueries(reactor, self)
        self.metrics = NodeMetrics(self, self.queries)
        self.flusher = UtxoFlusher(reactor, storage, self.state, self.journal, self.metrics,
                                   meta.applied_seq)
        self._applied_replayed = meta.replayed
        #: The IStorageCheck of the database (done already if open checked it).
        self.storage_check = (storage_check if storage_check is not None
                              else StorageCheck(reactor, storage.path, needed=False))
        self._validating = set()  # txids being verified or whose inputs are loading
        #: The last finalized txids read at open: votes after a restart follow them.
        self._finalized_before_start = set(meta.recent_txids)
        self._bound_contenders = set()  # contenders past lock expiry, kept by finality
        self._timers = []
        #: The conflict sets voted on before a restart, re-entered at start.
        self._saved_conflict_sets = meta.conflict_sets

    # -- lifecycle -----------------------------------------------------------

    def startService(self):
        for note in self.storage.notes:
            self.log.info("{note}", note=note)
        if self._applied_replayed:
            self.log.info("replayed {n} finality journal entries into the UTXO tables",
                          n=self._applied_replayed)
        flush_s = self.config["storage"]["flush_interval_ms"] / 1000.0
        for interval, fn in ((flush_s, self.flush), (MAINTENANCE_INTERVAL, self._maintain)):
            loop = LoopingCall(fn)
            loop.clock = self.reactor
            loop.start(interval, now=False)
            self._timers.append(loop)
        self.verifier.start()
        self.storage_check.start(self._storage_damaged)
        self._restore_conflict_sets()
        super().startService()

    def _restore_conflict_sets(self):
        """Before any peer is heard: re-enter the conflict sets voted on before
        the restart, so no vote goes to another member of one of them."""
        saved, self._saved_conflict_sets = self._saved_conflict_sets, None
        txs, records = readmit(saved, self.state, self.mempool, self.network.network_id)
        if records:
            self.log.info("re-entered {n} pending transactions of {sets} conflict sets "
                          "voted on before the restart", n=len(txs), sets=len(records))
            self.finality.restore(txs, records)

    def abandon_start(self):
        """Undo a start-up that failed part way (see ``IDaemonNode``)."""
        self.running = 0
        for loop in self._timers:
            if loop.running:
                loop.stop()
        self._timers = []
        self.verifier.abort()
        self.storage_check.stop_now()
        for service in self:
            if IListeningService.providedBy(service) and service.running:
                service.stopService()  # the port's socket is closed at once
        self.storage.close_now()

    def _storage_damaged(self, problem):
        """The background check found damage: nothing more is accepted."""
        if self.on_storage_damage is not None:
            self.on_storage_damage(problem)

    @defer.inlineCallbacks
    def stopService(self):
        """Stop in order: listeners, peers, consensus, storage flush, DB thread.

        The peer network stops listening before it closes its connections.
        """
        self.running = 0
        yield self.storage_check.stop()
        listeners = [s for s in self if IListeningService.providedBy(s)]
        for service in listeners:
            yield service.stopService()
        for service in self:
            if service not in listeners and service.running:
                yield service.stopService()
        # Transactions being verified are admitted (or refused) before consensus stops.
        yield self.verifier.stop()
        yield self.finality.stop()
        for loop in self._timers:
            if loop.running:
                loop.stop()
        self._timers = []
        self.queries.stop()
        yield self.journal.drain()
        self.journal.stop()
        yield self.flusher.finish()
        yield self.storage.close()
        self.log.info("node stopped; journal and UTXO tables flushed")

    # -- the validation pipeline ---------------------------------------------

    def submit_raw(self, raw, from_peer=False):
        try:
            tx = decode_tx(raw)
        except TxRejected as e:
            return defer.fail(e)
        return self.submit(tx, from_peer)

    def backup(self, directory=None):
        d = self.storage.backup(directory)
        return d.addCallback(lambda done: {"path": done[0], "bytes": done[1]})

    def submit(self, tx, from_peer=False):
        """Validate, lock and start deciding ``tx``; fire with its txid or fail
        with :class:`~timecoin.ledger.tx.TxRejected`.

        The signatures are checked by the verifier (on worker processes in a
        daemon); the UTXO checks, admission and locking follow on the reactor
        thread. A transaction submitted here (not relayed by a peer) is pushed
        whole to the peers, so the masternodes have it before they are polled.
        """
        try:
            self._precheck(tx)
            bound = self.finality.max_in_flight
            if (not from_peer and bound is not None
                    and self.finality.in_flight() + len(self._validating) >= bound):
                raise TxRejected("busy", f"{bound} transactions are being decided; "
                                         "send again shortly")
        except TxRejected as e:
            return self._refuse(tx, e)
        self._validating.add(tx.txid)
        d = self.verifier.verify(tx)
        d.addCallbacks(self._verified, self._not_verified,
                       callbackArgs=(tx, not from_peer), errbackArgs=(tx,))
        return d

    def _not_verified(self, failure, tx):
        self._validating.discard(tx.txid)
        failure.trap(TxRejected)
        return self._refuse(tx, failure.value)

    def _verified(self, _, tx, push):
        missing = self.state.missing([i.prevout for i in tx.inputs])
        if not missing:
            self._validating.discard(tx.txid)
            return self._admit_or_fail(tx, push)
        d = self.storage.load_utxos(missing)
        d.addCallback(self.state.load)
        d.addBoth(lambda result: (self._validating.discard(tx.txid), result)[1])
        d.addCallback(lambda _: self._admit_or_fail(tx, push))
        return d

    def _refuse(self, tx, error):
        self.metrics.rejected_on_entry(error.code)
        if error.code in PERMANENT_REJECTIONS:
            self.mempool.reject(tx.txid, str(error))
        if error.code not in ("already-known", "recently-rejected"):
            # Refused itself (not a second copy): whoever waits on it learns now.
            self.finality.tx_settled(tx.txid)
            self.queries.wake(tx.txid)
        return defer.fail(error)

    def _pending_or_final(self, txid):
        """True if ``txid`` is pending here or finalized lately."""
        return txid in self.mempool or self.finalized_recently(txid)

    def _precheck(self, tx):
        if self.storage_check.state == "damaged":
            raise TxRejected("storage-damaged", self.storage_check.problem)
        txid = tx.txid
        if self._pending_or_final(txid) or txid in self._validating:
            raise TxRejected("already-known", "transaction is already known")
        reason = self.mempool.rejection(txid)
        if reason is not None:
            raise TxRejected("recently-rejected", f"rejected within the hour: {reason}")
        check_structure(tx, self.network.network_id)

    def _admit_or_fail(self, tx, push):
        try:
            self._precheck_again(tx)
            return defer.succeed(self._admit(tx, push))
        except TxRejected as e:
            if e.code == "missing-input":
                return self._explain_missing(tx, e)
            return self._refuse(tx, e)

    def _precheck_again(self, tx):
        # Another submission of the same transaction may have won the race
        # while it was verified or its inputs were loading.
        if self._pending_or_final(tx.txid):
            raise TxRejected("already-known", "transaction is already known")

    def _admit(self, tx, push=False):
        contender = False
        try:
            input_total = self.state.check_inputs(tx)
        except TxRejected as e:
            if e.code != "input-locked" or not self.finality.accepts_conflicts:
                raise
            # A double spend of a pending transaction: finality decides between them.
            input_total = self.state.check_inputs(tx, allow_locked=True)
            contender = True
        output_total = tx.output_total
        fee = input_total - output_total
        if fee < 0:
            raise TxRejected("outputs-exceed-inputs",
                             f"outputs {output_total} exceed inputs {input_total}")
        if fee < MIN_FEE_RATE * tx.size:
            raise TxRejected("fee-too-low",
                             f"fee {fee} is below {MIN_FEE_RATE} unit/byte x {tx.size} bytes")
        self.registry.check_registration(tx)
        # Only what finality can still forget is evicted: never a polled coin.
        evicted = self.mempool.add(tx, fee, contender=contender,
                                   evictable=self.finality.can_forget)
        if not contender:
            self.state.lock(tx, pending=True)  # Locked, and at once SpentPending
        for txid in evicted:
            self._forget(txid, "evicted", "evicted by a higher fee rate before any vote")
        self.metrics.accepted()
        if self.peer_network is not None:
            # Before polling: on each connection the push precedes the query.
            self.peer_network.broadcast_tx(tx, push=push)
        self.finality.start(tx)
        return tx.txid

    @defer.inlineCallbacks
    def _explain_missing(self, tx, error):
        """Tell an input spent earlier from one that never existed."""
        for n, txin in enumerate(tx.inputs):
            if self.state.get(txin.prevout) is not None:
                continue
            parent = yield self._find_finalized(txin.prevout.txid)
            if parent is not None and txin.prevout.vout < len(decode_tx(parent.raw).outputs):
                error = TxRejected("input-spent", f"input {n} spends {txin.prevout}, already spent")
                break
            if txin.prevout.txid in self.mempool:
                error = TxRejected("input-pending",
                                   f"input {n} spends an output of a pending transaction")
                break
        yield self._refuse(tx, error)

    def _find_finalized(self, txid):
        record = self.journal.find(txid)
        if record is not None:
            return defer.succeed(record)
        return self.storage.get_transaction(txid)

    # -- decisions -----------------------------------------------------------

    def _final_here(self, txid):
        """True if ``txid`` has a final status here (finalized, being journaled)."""
        return self.journal.find(txid) is not None

    def _decided(self, txid, accepted, reason):
        entry = self.mempool.get(txid)
        if entry is None:
            return
        if accepted and self.mempool.rejection(txid) is not None:
            # Never reached: a rejected transaction leaves the mempool at once.
            self.log.error("{txid} was rejected here; a finalization is ignored",
                           txid=txid.hex())
            return
        if not accepted:
            self._drop(txid, "rejected", reason)
            return
        tx = entry.tx
        if self.mempool.is_contender(txid) and not self._take_locks(tx):
            return
        self.mempool.remove(txid)
        self._finalize(tx, entry.added_at)

    def _finalize(self, tx, arrived_at):
        """Spend and create in the UTXO state, then journal (reported once durable)."""
        spent = [self.state.get(i.prevout) for i in tx.inputs]
        record = self.journal.record(tx, spent, arrived_at)
        self.state.finalize(tx, record.seq)
        self.block_ledger.add(record.seq, tx, [(e.amount, e.key_hash) for e in spent])
        if self.registry.finalized(tx):
            self.log.info("masternode registry: {txid} registers or deregisters (pending until "
                          "a block confirms it)", txid=tx.txid.hex())
        self.journal.append(record, notify=False)

    def finalize_by_block(self, tx, height):
        """A certified block at ``height`` confirms ``tx``, not finalized here:
        rivals pending here lose, ``tx`` takes its inputs and is finalized."""
        txid = tx.txid
        reason = f"conflict: decided by block {height}"
        self.state.release(txid)
        for txin in tx.inputs:
            holder = self.state.lock_holder(txin.prevout)
            if holder is not None and holder != txid:
                self._drop(holder, "rejected", reason)
        self.state.check_inputs(tx)
        self.state.lock(tx)
        entry = self.mempool.get(txid)
        arrived_at = entry.added_at if entry is not None else self.reactor.seconds()
        self.mempool.remove(txid)
        self._bound_contenders.discard(txid)
        self._finalize(tx, arrived_at)
        self.finality.tx_settled(txid)

    def report_safety_incident(self, line):
        """A certified block conflicts with a transaction finalized here."""
        self.safety_incidents += 1
        self.safety_incident = line
        self.log.critical("{line}", line=line)

    def unwind_finalized(self, txid, reason):
        """A certified block overrules ``txid`` finalized here (module
        :mod:`timecoin.node.incidents`); return the txids unwound."""
        unwound = unwind_finalized(self, txid, reason)
        self.log.critical("safety incident: unwound {n} transactions finalized here: {txids}",
                          n=len(unwound), txids=", ".join(t.hex() for t in unwound))
        return unwound

    def reject_pending(self, txid, reason):
        """``txid``, pending here, is rejected with ``reason``."""
        self._drop(txid, "rejected", reason)

    def mark_unwound(self, txid, reason):
        """``txid``, finalized here, was unwound: ``rejected`` with ``reason``."""
        self.unwound[txid] = reason
        self._finalized_before_start.discard(txid)
        self.mempool.reject(txid, reason)
        self.metrics.dropped("rejected")
        self.events.publish(txid, False, reason, None)
        self.queries.wake(txid)

    def finalized_here(self, txid):
        """Fire with True if ``txid`` is finalized here (journal or storage)."""
        return self._find_finalized(txid).addCallback(lambda record: record is not None)

    def journal_page(self, after_seq, limit):
        """Fire with ``[(seq, raw)]`` of committed journal entries after
        ``after_seq`` that no block confirmed yet (the gap above the last
        block: below it, block sync carries them)."""
        return self.storage.journal_page(after_seq, limit, self.journal.committed_seq)

    def _take_locks(self, tx):
        """A contender won: its rivals lose their locks, and it takes them."""
        for txin in tx.inputs:
            holder = self.state.lock_holder(txin.prevout)
            if holder is not None and holder != tx.txid:
                self._drop(holder, "rejected", f"conflict: lost to {tx.txid.hex()}")
        try:
            self.state.check_inputs(tx)
            self.state.lock(tx)
        except (TxRejected, ValueError) as e:
            self.log.error("finalized {txid} cannot take its inputs: {error}",
                           txid=tx.txid.hex(), error=e)
            self._drop(tx.txid, "rejected", f"inputs unavailable: {e}")
            return False
        return True

    def _journal_committed(self, records):
        for record in records:
            self.metrics.finalized(record.finality_ms)
            self.events.publish(record.txid, True, "finalized", record.finality_ms)
            self.queries.wake(record.txid)

    def _drop(self, txid, kind, reason):
        if self._final_here(txid):
            self.log.error("{txid} is final here; not dropped ({reason})",
                           txid=txid.hex(), reason=reason)
            return
        self._bound_contenders.discard(txid)
        self.mempool.remove(txid)
        self.state.release(txid)
        self.finality.cancel(txid)
        self.mempool.reject(txid, reason)
        self.metrics.dropped(kind)
        self.events.publish(txid, False, reason, None)
        self.queries.wake(txid)

    def _forget(self, txid, kind, reason):
        """Let ``txid`` go without a decision: finality forgot it (never polled
        nor voted on), so nothing is final about it. It is not ``rejected``: the
        network may still finalize it, and then it may enter again here."""
        if not self.finality.cancel(txid):
            self.log.error("{txid} is being decided; not dropped ({reason})",
                           txid=txid.hex(), reason=reason)
            return
        self._bound_contenders.discard(txid)
        self.mempool.remove(txid)
        self.state.release(txid)
        self.mempool.note_dropped(txid, reason)
        self.metrics.dropped(kind)
        self.queries.wake(txid)

    # -- periodic work -------------------------------------------------------

    def flush(self):
        """Fold committed journal entries into the UTXO tables (one batch)."""
        return self.flusher.flush()

    @property
    def flush_error(self):
        return self.flusher.error

    def _maintain(self):
        # A lock expires only if finality forgets the transaction: once it was
        # polled or voted on, its coins stay bound to its conflict set.
        for txid in self.state.expire_locks(keep=self._still_deciding):
            if txid in self.mempool:
                self._forget(txid, "expired", "lock-expired: not polled before its locks expired")
        oldest = self.reactor.seconds() - self.state.lock_timeout
        for txid in [t for t in self.mempool.contenders()
                     if t not in self._bound_contenders
                     and self.mempool.get(t).added_at <= oldest]:
            if self._still_deciding(txid):
                self._bound_contenders.add(txid)
            else:
                self._forget(txid, "expired", "lock-expired: double spend not polled in time")
        self.mempool.expire_rejections()

    def _still_deciding(self, txid):
        """True if finality keeps ``txid`` (it entered a poll): it must not be freed."""
        return txid in self.mempool and not self.finality.can_forget(txid)

    def _masternode_online(self, pubkey):
        if pubkey == self.identity.pubkey:
            return True
        network = self.peer_network
        return network is not None and any(p.pubkey == pubkey for p in network.peers())

    # -- what the peer network asks of the node (timecoin.p2p.host.IPeerHost) --

    def best_height(self):
        return self.chain.height()

    def receive_tx(self, raw, peer_address=None):
        return self.submit_raw(raw, from_peer=True)

    def is_validating(self, txid):
        """True while ``txid``'s inputs are being loaded for validation."""
        return txid in self._validating

    def finalized_recently(self, txid):
        """True if ``txid`` finalized here lately (older ones are in storage)."""
        return self.journal.find(txid) is not None

    def decision(self, txid):
        if self.journal.find(txid) is not None or txid in self._finalized_before_start:
            return True
        if txid in self.unwound or self.mempool.rejection(txid) is not None:
            return False
        return None

    def save_conflict_sets(self, records):
        """Durable in the journal's next group commit (votes wait for it)."""
        return self.journal.save_conflict_sets(conflict_set_batch(records, self.mempool))

    def settled(self, txid):
        """True if this node decided ``txid`` itself (refused, finalized, rejected)."""
        return self.finalized_recently(txid) or self.mempool.rejection(txid) is not None

    def have_tx(self, txid):
        return (self._pending_or_final(txid) or txid in self._validating
                or self.mempool.rejection(txid) is not None)

    def get_tx_raw(self, txid):
        entry = self.mempool.get(txid)
        if entry is not None:
            return entry.tx.raw
        record = self.journal.find(txid)
        return record.raw if record is not None else None

    def run_db(self, fn):
        return self.storage.run_db(fn)

    def is_protected_peer(self, pubkey):
        """Active masternodes are never evicted: they vote in every poll."""
        entry = self.registry.get(pubkey)
        return entry is not None and entry.active


def registry_from_meta(genesis, meta):
    """The registry stored with ``meta`` (a ``ChainMeta``), or the genesis one."""
    if meta.masternodes is None:
        return MasternodeRegistry.from_genesis(genesis)
    return MasternodeRegistry.from_rows(meta.masternodes)
