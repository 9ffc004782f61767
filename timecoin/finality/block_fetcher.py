"""Which blocks to ask which peer for: the sans-I/O scheduler of block sync.

:class:`BlockFetcher` is a plain object driven by method calls with the time
passed in (no reactor, no network): the block service tells it the peers'
tips (:meth:`note_tip`), its own height (:meth:`set_height`), the replies
(:meth:`on_reply`) and the peers gone (:meth:`remove_peer`); it answers with
the ``getblocks`` requests to send (:meth:`requests`), hands the received
entries back in height order (:meth:`take`), and says whom to ban.

Rules (doc/blocks.md, "Block sync"):

* the heights wanted are those above this node's height up to the best tip
  heard, at most ``window`` of them at once (in flight plus received and not
  taken yet), cut into requests of at most ``batch`` heights;
* a request goes to the least loaded peer whose tip covers its first height
  (of equally loaded ones, the one asked least recently), at most
  ``per_peer`` heights in flight to one peer;
* a request unanswered for ``timeout`` seconds is freed for another peer; a
  peer that timed out ``slow_after`` times in a row is left out of the
  schedule for ``rest`` seconds (slow, not banned);
* a reply answers the peer's oldest outstanding request: its heights must run
  from that request's first height, one after another, no more than asked,
  and no fewer than the peer's claimed tip (a ``tip`` message) covers, unless
  the reply is *cut* (the peer stopped at the reply's byte bound after at
  least one entry: the rest of the range is asked again). A peer breaking
  this, or one whose block the service finds bad (:meth:`reject`),
  is banned: its requests and the entries it supplied go back to the others,
  and it is never asked again.

Entries are opaque here (the service decodes and checks them); only their
heights matter.
"""

from collections import Counter
from dataclasses import dataclass, field

#: Heights per request (a ``blocks`` message holds at most this many).
BATCH = 16
#: Heights in flight or received ahead of this node's height, in total.
WINDOW = 64
#: Heights in flight to one peer.
PER_PEER = 16
#: Seconds a request may stay unanswered.
TIMEOUT_S = 5.0
#: Consecutive timeouts after which a peer is left out of the schedule ...
SLOW_AFTER = 2
#: ... for this many seconds.
REST_S = 30.0


class FetchError(ValueError):
    """Why a peer's reply is refused (the peer is to be banned)."""


@dataclass
class _Peer:
    tip: int = 0  # the best height heard of it (claims and hints)
    claimed: int = 0  # the height it claimed to hold (``tip`` messages)
    timeouts: int = 0  # consecutive
    rest_until: float = 0.0
    asked: int = 0  # when it was last asked (a request counter): ties go round
    requests: list = field(default_factory=list)  # outstanding, oldest first


@dataclass
class _Request:
    peer: object
    start: int
    count: int
    deadline: float

    @property
    def heights(self):
        return range(self.start, self.start + self.count)


class BlockFetcher:
    """Assigns height ranges to peers and collects the replies (see the module
    docstring); ``height`` is the height this node holds."""

    def __init__(self, height=0, batch=BATCH, window=WINDOW, per_peer=PER_PEER,
                 timeout=TIMEOUT_S, slow_after=SLOW_AFTER, rest=REST_S):
        if not 1 <= batch <= per_peer or window < batch:
            raise ValueError("need 1 <= batch <= per_peer and window >= batch")
        self.height = height
        self.batch, self.window, self.per_peer = batch, window, per_peer
        self.timeout, self.slow_after, self.rest = timeout, slow_after, rest
        self._peers = {}
        self._in_flight = {}  # height -> _Request
        self._received = {}  # height -> (peer, entry)
        self.banned = set()
        self._asked = 0
        # Statistics.
        self.timeouts = 0
        self.delivered = 0
        self.received_from = Counter()  # peer -> entries accepted from it

    # -- what the service tells ------------------------------------------------

    def best_height(self):
        """The best tip heard of a peer still scheduled (at least ours)."""
        return max([self.height, *(p.tip for p in self._peers.values())])

    def note_tip(self, peer, height, claimed=False):
        """``peer`` holds blocks up to ``height``: ``claimed`` if it said so itself
        (a ``tip`` message, binding: it must then serve them), else a hint (a
        proposal or vote of the height above)."""
        if peer in self.banned:
            return
        state = self._peers.setdefault(peer, _Peer())
        state.tip = max(state.tip, height)
        if claimed:
            state.claimed = max(state.claimed, height)

    def peers(self):
        """The peers known here (scheduled or resting)."""
        return set(self._peers)

    def remove_peer(self, peer):
        """``peer`` is gone: its requests are freed; what it supplied stays."""
        state = self._peers.pop(peer, None)
        if state is not None:
            for request in state.requests:
                self._free(request)

    def ban(self, peer):
        """Never ask ``peer`` again, and drop every entry it supplied."""
        self.remove_peer(peer)
        self.banned.add(peer)
        for height, (supplier, _) in list(self._received.items()):
            if supplier == peer:
                del self._received[height]

    def set_height(self, height):
        """This node now holds blocks up to ``height``."""
        if height <= self.height:
            return
        self.height = height
        for h in [h for h in self._received if h <= height]:
            del self._received[h]

    # -- requests ----------------------------------------------------------------

    def requests(self, now):
        """The ``(peer, first height, count)`` requests to send now (marked in
        flight until ``now + timeout``)."""
        out = []
        top = min(self.best_height(), self.height + self.window)
        height = self.height + 1
        while height <= top:
            if height in self._in_flight or height in self._received:
                height += 1
                continue
            end = height
            while (end + 1 <= top and end + 1 - height < self.batch
                   and end + 1 not in self._in_flight and end + 1 not in self._received):
                end += 1
            peer = self._choose(height, now)
            if peer is None:
                height = end + 1
                continue
            state = self._peers[peer]
            count = min(end, state.tip, height - 1 + self.per_peer - self._load(state)) \
                - height + 1
            request = _Request(peer, height, count, now + self.timeout)
            self._asked += 1
            state.asked = self._asked
            state.requests.append(request)
            for h in request.heights:
                self._in_flight[h] = request
            out.append((peer, height, count))
            height += count
        return out

    def _load(self, state):
        return sum(r.count for r in state.requests)

    def _choose(self, height, now):
        candidates = [(self._load(s), s.asked, repr(peer), peer)
                      for peer, s in self._peers.items()
                      if s.tip >= height and s.rest_until <= now
                      and self._load(s) < self.per_peer]
        return min(candidates)[3] if candidates else None

    def _free(self, request):
        for h in request.heights:
            if self._in_flight.get(h) is request:
                del self._in_flight[h]

    # -- replies -------------------------------------------------------------------

    def expects(self, peer, first_height):
        """Whether a reply from ``peer`` starting at ``first_height`` (None: an
        empty one) answers an outstanding request: otherwise it is unsolicited
        (a certificate sent to a validator behind) and not for :meth:`on_reply`."""
        state = self._peers.get(peer)
        if state is None or not state.requests:
            return False
        return first_height is None or any(r.start == first_height for r in state.requests)

    def on_reply(self, peer, entries, now, cut=False):
        """``entries``: ``(height, entry)`` pairs of a reply from ``peer``, in
        the reply's order; ``cut``: the peer says it stopped at the reply's
        byte bound (the rest of the range is asked again, not owed now).
        Raises :class:`FetchError` (ban the peer: see :meth:`ban`) if the
        reply breaks the rules of the module docstring."""
        state = self._peers.get(peer)
        if state is None or not state.requests:
            return
        first = entries[0][0] if entries else None
        request = next((r for r in state.requests if r.start == first), state.requests[0])
        # Replies come in order: older requests were left unanswered (timed out).
        while state.requests and state.requests[0] is not request:
            self._free(state.requests.pop(0))
        state.requests.pop(0)
        self._free(request)
        heights = [h for h, _ in entries]
        if heights != list(range(request.start, request.start + len(heights))):
            raise FetchError(f"heights {heights[:3]}... do not run from {request.start}")
        if len(heights) > request.count:
            raise FetchError(f"{len(heights)} blocks for a request of {request.count}")
        owed = min(request.count, state.claimed - request.start + 1)
        if len(heights) < owed and not (cut and heights):
            raise FetchError(f"claimed tip {state.claimed} but served "
                             f"{request.start + len(heights) - 1} as its last")
        state.timeouts = 0
        if len(heights) < request.count and not cut:  # its tip is lower than heard
            state.tip = request.start + len(heights) - 1
        for height, entry in entries:
            if height > self.height and height not in self._received:
                self._received[height] = (peer, entry)
                self.received_from[peer] += 1

    def reject(self, height, peer=None):
        """The entry at ``height`` turned out bad: ban its supplier (or ``peer``)
        and return it (None if unknown); the height is fetched again."""
        supplier = self._received.pop(height, (peer, None))[0]
        if supplier is not None:
            self.ban(supplier)
        return supplier

    def supplier(self, height):
        """The peer that supplied the entry held for ``height``, or None."""
        entry = self._received.get(height)
        return entry[0] if entry is not None else None

    def take(self, height):
        """The entry received for ``height`` as ``(peer, entry)``, if it is the
        next one (``height`` = this node's + 1), else None. It stays counted
        until :meth:`set_height` passes it or :meth:`reject` drops it."""
        if height != self.height + 1 or height not in self._received:
            return None
        self.delivered += 1
        return self._received[height]

    # -- time ----------------------------------------------------------------------

    def on_tick(self, now):
        """Free the requests due; a peer slow ``slow_after`` times in a row rests."""
        for state in list(self._peers.values()):
            due = [r for r in state.requests if r.deadline <= now]
            for request in due:
                state.requests.remove(request)
                self._free(request)
                self.timeouts += 1
                state.timeouts += 1
            if due and state.timeouts >= self.slow_after:
                state.rest_until = now + self.rest
                state.timeouts = 0
                for request in state.requests:
                    self._free(request)
                state.requests = []

    def next_deadline(self):
        """When :meth:`on_tick` next has something to do, or None."""
        deadlines = [r.deadline for s in self._peers.values() for r in s.requests]
        return min(deadlines) if deadlines else None

    def in_flight(self):
        """Heights requested and not answered."""
        return len(self._in_flight)

    def held(self):
        """Heights received and not yet passed."""
        return len(self._received)
