"""``GET /metrics``: the node's registry in Prometheus text, collected on the reactor thread.

prometheus_client's own Twisted resource runs the collection on the reactor's
thread pool (through WSGI), while the reactor goes on changing the node's
state: a scrape during a busy poll could fail with "dictionary changed size
during iteration" (an HTTP 500). The node's state is only ever touched on the
reactor thread, so the collection runs there too; it reads counters and
sizes and takes a few milliseconds.
"""

from prometheus_client.exposition import choose_encoder
from twisted.web import resource


class MetricsPage(resource.Resource):
    """``/metrics`` for a prometheus_client ``CollectorRegistry``."""

    isLeaf = True

    def __init__(self, registry):
        super().__init__()
        self._registry = registry

    def render_GET(self, request):
        # The format the scraper asks for (Prometheus text 0.0.4 by default,
        # OpenMetrics on request), as prometheus_client's own exporter chooses it.
        accept = request.getHeader(b"accept")
        encode, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        text = encode(self._registry)
        request.setHeader(b"content-type", content_type.encode())
        request.setHeader(b"cache-control", b"no-store")
        return text
