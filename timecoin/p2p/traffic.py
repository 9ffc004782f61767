"""Node-wide counts of peer traffic: messages and bytes by kind and direction,
rate-limit hits, connections opened and closed, and the reactor thread's CPU
time spent handling each kind (what a kind of work costs: blocks' proposals,
votes and replies, Snowball's queries and votes, relay).

Each event is one dict increment keyed by a message kind (an int of
:data:`~timecoin.p2p.messages.KIND_NAMES`: only decoded messages are counted,
so the keys are bounded) or by a direction; names are given to them only
when the metrics are scraped (:func:`traffic_statistics`).
"""

from collections import Counter

from timecoin.p2p.messages import kind_name


class PeerTraffic:
    """The counters of every connection of one peer network."""

    __slots__ = ("received", "received_bytes", "sent", "sent_bytes", "rate_limited",
                 "opened", "closed", "handler_cpu")

    def __init__(self):
        self.received = {}  # kind -> messages
        self.received_bytes = {}  # kind -> frame bytes, headers included
        self.sent = {}
        self.sent_bytes = {}
        #: ``(kind, action)`` -> messages a token bucket refused (action: "ban" or "drop").
        self.rate_limited = Counter()
        #: direction -> connections opened / closed.
        self.opened = Counter()
        self.closed = Counter()
        #: kind -> CPU seconds of the reactor thread in that kind's handlers.
        self.handler_cpu = {}

    def count_received(self, kind, size):
        """A message of ``kind`` in a frame of ``size`` bytes arrived."""
        received = self.received
        received[kind] = received.get(kind, 0) + 1
        received = self.received_bytes
        received[kind] = received.get(kind, 0) + size

    def count_sent(self, kind, size):
        """A message of ``kind`` in a frame of ``size`` bytes was written."""
        sent = self.sent
        sent[kind] = sent.get(kind, 0) + 1
        sent = self.sent_bytes
        sent[kind] = sent.get(kind, 0) + size

    def handled(self, kind, cpu_seconds):
        """A message of ``kind`` was handled in ``cpu_seconds`` of thread CPU time."""
        handler_cpu = self.handler_cpu
        handler_cpu[kind] = handler_cpu.get(kind, 0.0) + cpu_seconds

    def limited(self, kind, action):
        """A message of ``kind`` found its token bucket empty; ``action`` was taken."""
        self.rate_limited[kind, action] += 1


def _by_kind(received, sent):
    samples = [({"kind": kind_name(k), "direction": "in"}, n) for k, n in received.items()]
    samples += [({"kind": kind_name(k), "direction": "out"}, n) for k, n in sent.items()]
    return sorted(samples, key=lambda sample: sorted(sample[0].items()))


def traffic_statistics(traffic):
    """The metrics of a :class:`PeerTraffic`, as ``(name, kind, doc, samples)``
    tuples (see :mod:`timecoin.p2p.stats`)."""
    return [
        ("timecoin_p2p_messages_total", "counter", "Peer messages, by kind and direction",
         _by_kind(traffic.received, traffic.sent)),
        ("timecoin_p2p_message_bytes_total", "counter",
         "Bytes of peer message frames (headers included), by kind and direction",
         _by_kind(traffic.received_bytes, traffic.sent_bytes)),
        ("timecoin_p2p_rate_limited_total", "counter",
         "Peer messages refused by an empty token bucket, by kind and action (drop or ban)",
         [({"kind": kind_name(k), "action": a}, n)
          for (k, a), n in sorted(traffic.rate_limited.items())]),
        ("timecoin_p2p_handler_cpu_seconds_total", "counter",
         "CPU seconds of the reactor thread in the handlers of received peer messages, "
         "by kind (what follows from them included: a vote that commits a block counts "
         "the commit)",
         [({"kind": kind_name(k)}, round(v, 6)) for k, v in sorted(traffic.handler_cpu.items())]),
        ("timecoin_peer_connections_opened_total", "counter",
         "Peer connections opened, by direction (churn, with the closed ones)",
         [({"direction": d}, traffic.opened[d]) for d in ("inbound", "outbound")]),
        ("timecoin_peer_connections_closed_total", "counter",
         "Peer connections closed for any reason, by direction",
         [({"direction": d}, traffic.closed[d]) for d in ("inbound", "outbound")]),
    ]
