"""The node's side of the block service: contents, replay and applying blocks.

:class:`NodeBlocks` provides ``IBlockHost`` over the node's components. A
committed block is applied in one reactor turn, in this order: the chain
(``BlockChain.append``, which applies the block to the masternode registry:
the active set changes only here), the UTXO state (the spends it confirms
become ``confirmed``; its reward transaction's outputs are added), the
unconfirmed list (:class:`~timecoin.ledger.checkpoint.BlockLedger`) and
finality's stake weights if the active set changed. Durability follows in
one SQLite transaction (``IJournal.append_block`` -> ``IStorage.save_block``):
the block row with its certificate, the reward's journal record, every
confirmed transaction's ``block_height``, the registry's rows and, if the
block changed the active set, the set after it (for finality proofs: the
block is noted in ``IFinalityProofs`` with it).

**Stalled conflict sets.** A proposer includes one member of a conflict set
stalled here (``IFinality.stalled_sets``): the member with the most confidence,
ties broken by the smallest ``BLAKE2b(height || txid)`` (a double-spender
cannot grind a txid that wins every height). A validator accepts a block
naming a transaction it has not finalized only if that transaction is pending
here (a member of a stalled or still polled set) and valid against its UTXO
state (so never against one it finalized). Committed, the member is decided
by the block (``IFinality.decide_by_block``: finalized through the usual path,
its rivals ``rejected`` with ``conflict: decided by block H``), then confirmed
like every other transaction of the block.

**Carried commits.** A proposer's block carries the commit certificate it
stored with the best block (its *last commit*); a validator verifies it
(:meth:`NodeBlocks.verify_last_commit`: a certificate of the best block's
height and hash, with valid signatures of more than 2/3 of the stake of the
set that signed it, the chain's ``active_set_at(height - 1)``). Committed,
its signers go to the chain's missed-service counts.

**Certified blocks** (block sync): a block whose commit certificate verified
here comes with the raw bodies of its transactions, and is valid here if
they apply (:mod:`timecoin.node.certified`): a transaction finalized here is
confirmed, one pending here is decided by the block, one unknown here is
checked and entered as finalized by the block (``IBlockApplyHost``). A
transaction conflicting with one this node finalized is a safety incident:
logged at critical level, counted, shown in ``/health``, and the block wins:
the local transaction and its descendants are unwound
(:mod:`timecoin.node.incidents`), ``rejected`` with a reason starting
``safety incident: ``, and the block's transaction is applied.

At start (:meth:`NodeBlocks.load`) the stored blocks are replayed into the
chain (with the stored sets and the signers of each carried commit: the
chain's set history and missed-service counts) and the proofs' hand-offs,
and the journal entries no block confirmed go back to the unconfirmed list,
before the block service starts its first height.
"""

import hashlib

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.consensus.bft_messages import MessageError
from timecoin.consensus.certificate import CertificateError, CommitCertificate, verify_certificate
from timecoin.consensus.proposer import ValidatorSet
from timecoin.finality.blocks import network_tag
from timecoin.interfaces import IBlockHost
from timecoin.ledger.block import Block, BlockError
from timecoin.ledger.checkpoint import MissingTransactions, Unconfirmed, unconfirmed_from_row
from timecoin.ledger.keys import verify as ed25519_verify
from timecoin.ledger.tx import TxRejected
from timecoin.node.certified import InputsNotLoaded, plan_certified


def stalled_choice(members, height):
    """The member of a stalled set (``[(txid, confidence)]``) a block at
    ``height`` decides: the most confidence, then the smallest hash of the
    height and txid."""
    def rank(member):
        txid, confidence = member
        tie = hashlib.blake2b(height.to_bytes(8, "big") + txid, digest_size=32).digest()
        return (-confidence, tie)
    return min(members, key=rank)[0]


def last_signers(block):
    """The signers of ``block``'s carried commit (None: it carries none);
    :class:`BlockError` if it is malformed."""
    if not block.last_commit:
        return None
    try:
        certificate = CommitCertificate.decode(block.last_commit)
    except MessageError as e:
        raise BlockError(f"the carried commit is malformed: {e}") from None
    return [pubkey for pubkey, _ in certificate.signatures]


@implementer(IBlockHost)
class NodeBlocks:
    """``IBlockHost`` over the node's ``chain`` (IBlockConsensus), ``ledger``
    (IBlockLedger), ``state`` (IUtxoState), ``journal`` (IJournal), ``storage``
    (IStorage), ``finality`` (IFinality), ``proofs`` (IFinalityProofs) and
    ``mempool`` (IMempool: the pending transactions a block may decide),
    ``peers`` (IPeerNetwork, or None: told when a block changes the active
    set, so that masternodes that joined or rejoined get the BFT messages),
    ``snapshots`` (the node's snapshots, or None) and ``apply_host``
    (IBlockApplyHost: entering a certified block's transactions unknown
    here; needed for certified blocks only)."""

    log = Logger()

    def __init__(self, clock, chain, ledger, state, journal, storage, finality, proofs,
                 mempool, peers=None, snapshots=None, apply_host=None):
        self._clock = clock
        self._chain = chain
        self._ledger = ledger
        self._state = state
        self._journal = journal
        self._storage = storage
        self._finality = finality
        self._proofs = proofs
        self._mempool = mempool
        self._peers = peers
        #: The node's snapshots (``timecoin.node.snapshots.NodeSnapshots``) or None.
        self._snapshots = snapshots
        self._apply_host = apply_host
        self._plans = {}  # block hash -> CertifiedPlan, checked here
        self._loading = {}  # block hash -> outpoints asked of storage (None: not back)
        self.loaded = False

    @defer.inlineCallbacks
    def load(self):
        """Replay the stored blocks and the unconfirmed journal entries."""
        if self._snapshots is not None:
            yield self._snapshots.load_base()
        rows = yield self._storage.load_blocks(self._chain.height())
        sets = dict((yield self._storage.load_block_sets()))
        for height, body, certificate in rows:
            block, certificate = Block.decode(body), CommitCertificate.decode(certificate)
            self._chain.restore(block, certificate, last_signers(block), sets.get(height))
            self._proofs.note_block(block, certificate, sets.get(height))
        self._chain.restored()
        if self._proofs.missing_sets():
            self.log.warn("no active set is stored for the blocks {heights} that changed it "
                          "(committed before schema version 5): no finality proof for a "
                          "block above them", heights=self._proofs.missing_sets())
        unconfirmed = yield self._storage.load_unconfirmed()
        self._ledger.restore([unconfirmed_from_row(*row) for row in unconfirmed])
        if rows:
            self.log.info("replayed {n} stored blocks (height {height}); {pending} finalized "
                          "transactions wait for a block", n=len(rows),
                          height=self._chain.height(), pending=len(self._ledger))
        self.loaded = True

    # -- IBlockHost ----------------------------------------------------------

    def height(self):
        return self._chain.height()

    def block_at(self, height):
        return self._chain.block_at(height)

    def certificate_at(self, height):
        return self._chain.certificate_at(height)

    def validators(self):
        return self._chain.registry.active_set()

    def validators_at(self, height):
        return self._chain.active_set_at(height)

    def verify_last_commit(self, block):
        """Raise :class:`BlockError` unless ``block`` carries a valid commit
        certificate of the best block (see the module docstring)."""
        signing = self._chain.active_set_at(block.height - 2)
        if not signing:
            raise BlockError(f"the set that signed block {block.height - 1} is not known here")
        try:
            certificate = CommitCertificate.decode(block.last_commit)
            verify_certificate(certificate, ValidatorSet.from_stakes(signing),
                               network_tag(self._ledger.network.network_id), ed25519_verify,
                               height=block.height - 1, block_hash=block.header.prev_hash)
        except MessageError as e:
            raise BlockError(f"the carried commit is malformed: {e}") from None
        except CertificateError as e:
            raise BlockError(f"the carried commit does not verify: {e.reason}") from None

    @defer.inlineCallbacks
    def block_bodies(self, height):
        """The raw transactions of block ``height``: from the journal's recent
        records in memory, else from storage (one read for the block, then
        one per transaction whose ``block_height`` is not written yet)."""
        block = self._chain.block_at(height)
        if block is None:
            return None
        records = {t: self._journal.find(t) for t in block.txids}
        found = {t: bytes(r.raw) for t, r in records.items() if r is not None}
        if len(found) < len(block.txids):
            found.update((yield self._storage.block_transactions(height)))
        for txid in block.txids:
            if txid not in found:
                record = yield self._storage.get_transaction(txid)
                if record is None:
                    return None
                found[txid] = bytes(record.raw)
        return tuple(found[t] for t in block.txids)

    def _pending_member(self, txid):
        """``txid`` pending here, valid against the UTXO state, and one this
        node may vote a block for (``IFinality.may_decide_by_block``: it never
        answered "yes" for a rival), as an :class:`Unconfirmed` (``seq``
        None), or None."""
        entry = self._mempool.get(txid)
        if entry is None or not self._finality.may_decide_by_block(txid):
            return None
        tx = entry.tx
        try:
            self._state.check_inputs(tx, allow_locked=True)
        except (TxRejected, ValueError):
            return None
        spent = tuple((e.amount, e.key_hash) for e in (self._state.get(i.prevout)
                                                        for i in tx.inputs))
        return Unconfirmed(None, tx, spent, sum(a for a, _ in spent) - tx.output_total)

    def build_block(self, round_, proposer, now, deactivations=()):
        height = self._chain.height() + 1
        decided = []
        # Only a round-0 proposal decides a stalled set: validators that voted
        # for a rival refuse it, and the later rounds' blocks must not carry
        # it, so that the height still commits.
        for members in self._finality.stalled_sets() if round_ == 0 else ():
            allowed = [m for m in members if self._finality.may_decide_by_block(m[0])]
            member = self._pending_member(stalled_choice(allowed, height)) if allowed else None
            if member is not None:
                decided.append(member)
        best = self._chain.certificate_at(height - 1)
        last_commit = best.encode() if best is not None else b""
        return self._ledger.build(round_, proposer, now, deactivations, decided=decided,
                                  last_commit=last_commit)

    def check_block(self, block, proposer_of, now, justified=None, bodies=None):
        if bodies is not None:
            self._check_certified(block, proposer_of, now, justified, bodies)
            return
        decided = {}
        for txid in block.txids:
            if txid not in self._ledger:
                member = self._pending_member(txid)
                if member is not None:
                    decided[txid] = member
        self._ledger.check(block, proposer_of, now, justified, decided=decided,
                           verify_last_commit=self.verify_last_commit)
        for txid in block.txids:
            if txid in decided and not self._finality.vote_for_block(txid):
                raise MissingTransactions((txid,))

    def _check_certified(self, block, proposer_of, now, justified, bodies):
        if self._apply_host is None:
            raise MissingTransactions([t for t in block.txids if t not in self._ledger])
        asked = self._loading.get(block.hash, frozenset())
        if asked is None:
            raise MissingTransactions(())  # inputs still loading
        try:
            plan = plan_certified(block, bodies, self._ledger.network.network_id,
                                  self._ledger, self._state, asked)
        except InputsNotLoaded as e:
            self._load_inputs(block.hash, asked, e.outpoints)
            raise
        self._ledger.check(block, proposer_of, now, justified, decided=plan.items,
                           certified=True, verify_last_commit=self.verify_last_commit)
        self._plans = {block.hash: plan}

    def _load_inputs(self, block_hash, asked, outpoints):
        self._loading[block_hash] = None
        d = self._storage.load_utxos(list(outpoints))
        d.addCallback(self._state.load)

        def done(result):
            self._loading[block_hash] = frozenset(asked) | frozenset(outpoints)
            return result
        d.addBoth(done)
        d.addErrback(lambda f: self.log.failure("loading a certified block's inputs", f))

    def _unwind_incidents(self, block, incidents):
        """The block wins over the transactions finalized here it conflicts
        with: each is reported, then unwound with its descendants."""
        for local, winner in incidents:
            if local not in self._ledger:
                continue  # unwound already, as a descendant of another
            reason = (f"safety incident: block {block.height} confirms {winner.hex()}, "
                      f"which conflicts with {local.hex()}")
            self._apply_host.report_safety_incident(
                f"{reason} finalized here; the block wins")
            self._apply_host.unwind_finalized(local, reason)

    def commit_block(self, block, certificate, bodies=None):
        now = self._clock.seconds()
        plan = self._plans.pop(block.hash, None) if bodies is not None else None
        if bodies is not None and plan is None:
            plan = plan_certified(block, bodies, self._ledger.network.network_id,
                                  self._ledger, self._state)
        self._plans.clear()
        self._loading.clear()
        if plan is not None and plan.incidents:
            self._unwind_incidents(block, plan.incidents)
        for txid in block.txids:
            if txid not in self._ledger and plan is not None and txid not in self._mempool:
                self.log.info("block {height} enters {txid}, unknown here (certified)",
                              height=block.height, txid=txid.hex())
                self._apply_host.finalize_by_block(plan.items[txid].tx, block.height)
            elif txid not in self._ledger:
                self.log.info("block {height} decides the stalled conflict set of {txid}",
                              height=block.height, txid=txid.hex())
                self._finality.decide_by_block(txid, block.height)
                if txid not in self._ledger and plan is not None:
                    self._apply_host.finalize_by_block(plan.items[txid].tx, block.height)
        undecided = [t for t in block.txids if t not in self._ledger]
        if undecided:
            self.log.critical("block {height} cannot be applied: {n} of its transactions "
                              "are not finalized here", height=block.height, n=len(undecided))
            return defer.fail(BlockError(f"block {block.height} names transactions not "
                                         "finalized here"))
        before = self._chain.registry.active_set()
        self._chain.append(block, certificate, self._ledger.transactions(block),
                           last_signers(block))
        self._state.confirm(self._ledger.spent_outpoints(block))
        record = None
        if block.reward_tx is not None:
            record = self._journal.record(block.reward_tx, [], now)
            self._state.finalize(block.reward_tx, record.seq)
        self._ledger.applied(block)
        after = self._chain.registry.active_set()
        changed = after if after != before else None
        if changed is not None:
            self._finality.set_masternodes(after)
            if self._peers is not None:
                self._peers.masternodes_changed()
        self._proofs.note_block(block, certificate, changed)
        row = (block.height, block.hash, block.header.encode(), block.encode(),
               certificate.encode(), now)
        rows = self._chain.registry.rows()
        d = self._journal.append_block(record, row, block.all_txids, rows, changed)
        if self._snapshots is not None:
            d.addCallback(lambda result: (self._snapshots.block_committed(block, rows),
                                          result)[1])
        return d
