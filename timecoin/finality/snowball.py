"""Snowball finality over the peer network: the Twisted side of the sans-I/O core.

:class:`SnowballFinality` provides :class:`~timecoin.interfaces.IFinality`. It
feeds validated transactions to a :class:`~timecoin.consensus.snowball.SnowballEngine`,
runs polls with a :class:`~timecoin.consensus.polls.PollManager` (stake-weighted samples
of the whole active set of masternodes, this node included; sampled ones it is
not connected to count as silent; every transaction in flight batched into one
query per sampled validator; no poll while the reachable stake is below
alpha), answers other nodes' queries with this node's preferences, and reports
each decision to its listeners.

Votes leave only once the conflict sets they answer about are durable: the
engine's ``dirty_records()`` go to the host (``save_conflict_sets``, which
the journal commits ahead of its queued records) and a reply waits for the
latest save that carried a set of any txid it answers about (a set voted on
again must be durable before that vote leaves too), not for saves about
other transactions. After a restart :meth:`SnowballFinality.restore` re-enters the
saved sets, pinned to the member this node voted for.

A query naming a transaction this node has not seen is answered once the
transaction has been fetched (``getdata`` to the asker) and validated, or,
failing that, after ``fetch_timeout`` with a "no" for it. All timing goes
through the injected clock.
"""

import heapq
import random
from collections import Counter, OrderedDict

from twisted.logger import Logger
from zope.interface import implementer

from timecoin.consensus.polls import PollManager
from timecoin.consensus.sampling import Reputation
from timecoin.consensus.snowball import SnowballEngine
from timecoin.finality.held_queries import HeldQueries
from timecoin.finality.messages import SnowballQuery, SnowballVotes
from timecoin.finality.statistics import finality_statistics
from timecoin.interfaces import IFinality
from timecoin.p2p import messages as m

#: How many decisions may be kept for late queries about them.
REMEMBER_DECISIONS = 200_000
#: With transactions pending and no poll possible, try again after this long.
IDLE_RETRY_S = 0.25
#: Polls whose send time is kept for their replies' round trip (a few times max_polls).
SENT_POLLS_KEPT = 64


@implementer(IFinality)
class SnowballFinality:
    """Snowball polling among masternodes (see the module docstring)."""

    log = Logger()
    accepts_conflicts = True
    #: Back-pressure: while this many transactions are being decided, the node
    #: refuses its own new submissions with ``busy`` (relayed ones still enter),
    #: so an overload slows the senders instead of timing decisions out. A poll
    #: carries up to 1,024 txids: at this bound every pending one is in every poll.
    max_in_flight = 1024

    def __init__(self, clock, params, masternodes, self_pubkey, query_timeout_ms,
                 rng=None, max_polls=4, lookup=None):
        self._clock = clock
        # Votes beyond the engine's window follow the node's decisions (``decision``).
        self.engine = SnowballEngine(params, remember=REMEMBER_DECISIONS,
                                     lookup=lookup or self._host_decision)
        self.reputation = Reputation(clock.seconds)
        self.polls = PollManager(self.engine, self.reputation, rng or random.Random(),
                                 self_pubkey, query_timeout_ms, max_polls)
        #: Stake weight of each masternode's public key.
        self.masternodes = dict(masternodes)
        self.self_pubkey = self_pubkey
        self.fetch_timeout = min(query_timeout_ms / 2000.0, 1.0)
        self._host = None  # IFinalityHost: what the node knows of a txid
        self._listeners = []
        self._network = None
        self._peer_of = {}  # validator pubkey -> peer id
        self._held = HeldQueries(clock, self._reply)
        self._started_at = {}
        self._stalled = set()  # pending txids whose set is stalled
        self._stalled_seen = 0
        self._timer = None
        self._timer_at = None
        self.queries_answered = 0
        self._saves_asked = 0  # conflict-set saves asked of the host ...
        self._saves_done = 0  # ... and how many of them are durable (in order)
        self._save_of = {}  # txid -> the last save, not yet durable, naming it
        self._save_txids = {}  # save number -> the txids it names
        self._unsent = []  # heap of (saves needed, n, peer id, SnowballVotes)
        self._unsent_count = 0
        self._poll_sent = OrderedDict()  # poll id -> when its queries were sent
        #: Poll round trips: ``{milliseconds: replies}``.
        self.round_trips_ms = Counter()

    # -- wiring --------------------------------------------------------------

    def attach(self, network, host):
        """Carry queries and votes over ``network``; ``host`` says which txids
        the node settled itself (``settled``) and which it has (``have_tx``)."""
        self._network = network
        self._host = host
        network.register_handler(m.SNOWBALL_QUERY, self._on_query)
        network.register_handler(m.SNOWBALL_VOTES, self._on_votes)

    def _host_decision(self, txid):
        return self._host.decision(txid) if self._host is not None else None

    def add_listener(self, callback):
        self._listeners.append(callback)

    def stop(self):
        self._held.stop()
        self._unsent.clear()  # never sent: the node stops before they are durable
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- IFinality -----------------------------------------------------------

    def start(self, tx):
        self._started_at[tx.txid] = self._clock.seconds()
        self._report(self.engine.add(tx.txid, [i.prevout for i in tx.inputs]))
        self._held.resolve(tx.txid)
        self._pump()

    def restore(self, txs, records):
        """Re-enter ``txs`` and the conflict sets ``records`` saved before a restart."""
        now = self._clock.seconds()
        for tx in txs:
            self._started_at[tx.txid] = now
        self._report(self.engine.restore(records))
        for tx in txs:  # members of no saved set (none, normally) enter as new
            self._report(self.engine.add(tx.txid, [i.prevout for i in tx.inputs]))
            self._held.resolve(tx.txid)
        self._pump()

    def can_forget(self, txid):
        return self.polls.can_forget(txid)

    def cancel(self, txid):
        if not self.polls.cancel(txid):
            return False
        self._started_at.pop(txid, None)
        self._save_records()  # its saved rows go: a restart must not bring it back
        return True

    def set_masternodes(self, weights):
        """A block changed the active set: polls sample by the new weights."""
        self.masternodes = dict(weights)
        self.polls.set_validators(self.masternodes)

    def in_flight(self):
        """Pending transactions, stalled ones not counted: a stalled set waits for
        the block layer and must not wedge ``max_in_flight`` back-pressure."""
        self._refresh_stalled()
        return len(self.engine) - len(self._stalled)

    def stalled(self):
        self._refresh_stalled()
        return len(self._stalled)

    def pending_reason(self, txid):
        if not self.engine.is_stalled(txid):
            return None
        return (f"stalled: its conflict set is undecided after "
                f"{self.engine.params.max_rounds} polls; it stays locked until one "
                "member is finalized")

    def stalled_sets(self):
        return self.engine.stalled_sets()

    def decide_by_block(self, txid, height):
        self._report(self.engine.decide_by_block(txid, height))
        self._save_records()  # the decided sets' rows go: votes follow the decision
        self._pump()

    def may_decide_by_block(self, txid):
        return self.engine.may_decide_by_block(txid)

    def vote_for_block(self, txid):
        pinned = self.engine.vote_for_block(txid)
        if pinned:
            self._save_records()
        return pinned

    def _refresh_stalled(self):
        # The engine counts sets newly stalled; rescan only when that count moved.
        count = self.engine.stats.stalled
        if count != self._stalled_seen:
            self._stalled_seen = count
            self._stalled = {t for t in self._started_at if self.engine.is_stalled(t)}

    def report_finalized(self, txid, outpoints, reporters):
        """Catch-up: judged by the reporters' stake (see ``PollManager.report_finalized``)."""
        self.polls.set_validators(self.masternodes)
        decisions = self.polls.report_finalized(txid, outpoints, reporters)
        self._report(decisions)
        self._pump()
        return any(t == txid and accepted for t, accepted, _ in decisions)

    def tx_settled(self, txid):
        """The node refused ``txid`` at entry: queries waiting for it get a "no"."""
        self._held.resolve(txid)

    def statistics(self):
        stats, polls = self.engine.stats, self.polls.stats
        return finality_statistics(
            flips=stats.preference_flips, polls=polls.completed + polls.expired,
            replies=polls.replies, missing=polls.missing_replies, stalled_now=self.stalled(),
            rounds=dict(stats.rounds_to_accept), votes=polls.votes, stalled=stats.stalled,
            aborted=polls.aborted, early=polls.early_terminated,
            votes_per_poll=dict(polls.votes_per_poll),
            round_trips_s={ms / 1000.0: n for ms, n in self.round_trips_ms.items()})

    # -- polling -------------------------------------------------------------

    def active_validators(self):
        """``{pubkey: weight}`` of the masternodes connected now, this node excluded."""
        masternodes, me = self.masternodes, self.self_pubkey
        if self._network is None:
            self._peer_of = {}
        else:  # the network keeps this view current on connect and disconnect: O(masternodes)
            self._peer_of = {pk: pid for pk, pid in self._network.masternode_peers().items()
                             if pk != me and pk in masternodes}
        return {pk: masternodes[pk] for pk in self._peer_of}

    @property
    def poll_abort_reason(self):
        """Why this node cannot poll now (e.g. too little connected stake), or None."""
        return self.polls.abort_reason

    def _pump(self):
        # Samples come from the whole active set; the connected ones can answer.
        # The connected set is read (O(masternodes)) only when a poll could start:
        # not on every vote reply while the polls in flight are at their bound.
        polls = self.polls
        if polls.polls_in_flight < polls.max_polls and len(self.engine):
            polls.set_validators(self.masternodes, connected=self.active_validators())
        now = self._clock.seconds()
        while self.polls.can_start():
            queries = self.polls.start_poll(now)
            if not queries:
                break
            self._poll_sent[queries[0].poll_id] = now
            while len(self._poll_sent) > SENT_POLLS_KEPT:
                self._poll_sent.popitem(last=False)
            for query in queries:
                peer_id = self._peer_of.get(query.validator)
                if peer_id is not None:
                    self._network.send(peer_id, SnowballQuery(query.poll_id, query.txids))
        self._save_records()  # new members, and this node's own votes in its polls
        self._schedule()

    def _schedule(self):
        deadlines = [d for d in (self.polls.next_deadline(),) if d is not None]
        if len(self.engine) and not self.polls.polls_in_flight:
            # Transactions wait for validators to connect: look again soon.
            deadlines.append(self._clock.seconds() + IDLE_RETRY_S)
        if not deadlines:
            return
        at = min(deadlines)
        if self._timer is not None and self._timer.active():
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._clock.callLater(max(0.0, at - self._clock.seconds()), self._tick)

    def _tick(self):
        self._timer = None
        self._report(self.polls.on_tick(self._clock.seconds()))
        self._pump()

    def _on_votes(self, peer_id, message):
        peer = self._network.get_peer(peer_id)
        validator = peer.pubkey if peer is not None else None
        sent = self._poll_sent.get(message.poll_id)
        if sent is not None and validator is not None:
            self.round_trips_ms[round((self._clock.seconds() - sent) * 1000)] += 1
        self._report(self.polls.on_reply(message.poll_id, validator, list(message.votes)))
        self._pump()

    # -- answering -----------------------------------------------------------

    def _on_query(self, peer_id, message):
        engine_status, is_known = self.engine.status, self._host.settled
        unknown = [t for t in message.txids if engine_status(t) is None and not is_known(t)]
        if not unknown:
            self._reply(peer_id, message)
            return
        fetch = tuple(t for t in unknown if not self._host.have_tx(t))
        if fetch:
            self._network.send(peer_id, m.GetData(fetch[:m.MAX_INV]))
        self._held.hold(peer_id, message, unknown, self.fetch_timeout)

    def _reply(self, peer_id, query):
        self.queries_answered += 1
        message = SnowballVotes(query.poll_id, tuple(self.engine.votes(query.txids)))
        self._save_records()
        save_of = self._save_of
        needed = max((save_of.get(t, 0) for t in query.txids), default=0)
        if needed <= self._saves_done:
            self._network.send(peer_id, message)
        else:
            self._unsent_count += 1
            heapq.heappush(self._unsent, (needed, self._unsent_count, peer_id, message))

    def _save_records(self):
        # Every changed conflict set goes to the host (the journal's next commit).
        records = self.engine.dirty_records()
        if records and self._host is not None:
            self._saves_asked += 1
            number = self._saves_asked
            txids = {txid for record in records for txid, _ in record.members}
            for txid in txids:
                self._save_of[txid] = number
            self._save_txids[number] = txids
            self._host.save_conflict_sets(records).addCallbacks(
                self._saved, self._save_failed)

    def _saved(self, _):
        # The journal commits in order: this save and every earlier one are durable.
        self._saves_done += 1
        done = self._saves_done
        save_of = self._save_of
        for txid in self._save_txids.pop(done, ()):
            if save_of.get(txid) == done:
                del save_of[txid]
        unsent = self._unsent
        while unsent and unsent[0][0] <= done:
            _, _, peer_id, message = heapq.heappop(unsent)
            self._network.send(peer_id, message)

    def _save_failed(self, failure):
        self.log.failure("saving conflict sets failed; the votes waiting for it stay unsent",
                         failure)

    # -- decisions -----------------------------------------------------------

    def _report(self, decisions):
        # Rejections first: a winner may need the locks its rivals held.
        for txid, accepted, reason in sorted(decisions, key=lambda d: d[1]):
            self._started_at.pop(txid, None)
            self._stalled.discard(txid)
            for listener in self._listeners:
                listener(txid, accepted, reason)
