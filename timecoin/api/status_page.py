"""``GET /``: the status page for people, rendered on the server.

One HTML document from :mod:`twisted.web.template`, with no script, no
external asset and no authentication (it shows what ``/health`` and the
read-only RPC methods show): height, health, peers with their ping,
masternodes with their tiers, the mempool, the latest finality times as an
inline SVG bar chart, and the latest blocks. Every figure carries a
``data-field`` attribute so tools (and the browser test) can read it.
"""

from twisted.web import resource
from twisted.web.template import Element, Tag, XMLString, flattenString, renderer, tags

#: Blocks listed on the page, newest first.
RECENT_BLOCKS = 10
#: Size of the finality chart, in pixels.
CHART_WIDTH, CHART_HEIGHT = 600, 120

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.8em; text-align: left;
  border-bottom: 1px solid #ddd; } th { background: #eee; }
.ok { color: #1a7f37; } .degraded { color: #b3261e; } .muted { color: #777; }
dl.figures { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; }
"""

_TEMPLATE = XMLString("""\
<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
<head><meta charset="utf-8"/><title>timecoin node</title><style t:render="style"/>
</head>
<body>
<h1>timecoin node <span class="muted" t:render="version"/></h1>
<dl class="figures" t:render="figures"/>
<div t:render="problems"/>
<h2>Finality times (latest <t:transparent t:render="finality_count"/>, ms)</h2>
<div t:render="finality_chart"/>
<h2>Recent blocks</h2>
<div t:render="blocks"/>
<h2>Peers</h2>
<div t:render="peers"/>
<h2>Masternodes</h2>
<div t:render="masternodes"/>
</body></html>
""")


class StatusPage(Element):
    """The page's element: figures read once, when it is rendered."""

    loader = _TEMPLATE

    def __init__(self, snapshot):
        super().__init__()
        self._s = snapshot

    @renderer
    def style(self, request, tag):
        return tag(_STYLE)

    @renderer
    def finality_count(self, request, tag):
        return tag(str(len(self._s["finality_ms"])))

    @renderer
    def version(self, request, tag):
        return tag(f"{self._s['health']['version']} on {self._s['health']['network']}")

    @renderer
    def figures(self, request, tag):
        health, mempool = self._s["health"], self._s["mempool"]
        rows = [("Status", "status", health["status"]), ("Height", "height", health["height"]),
                ("Peers", "peers", health["peers"]),
                ("Active masternodes", "masternodes_active", health["masternodes_active"]),
                ("Mempool transactions", "mempool_size", mempool["size"]),
                ("Mempool bytes", "mempool_bytes", mempool["bytes"]),
                ("Minimum fee rate", "min_fee_rate", mempool["min_fee_rate"]),
                ("Uptime (s)", "uptime_s", health["uptime_s"])]
        for label, field, value in rows:
            dd = tags.dd(str(value), **{"data-field": field})
            if field == "status":
                dd.attributes["class"] = value
            tag(tags.dt(label), dd)
        return tag

    @renderer
    def problems(self, request, tag):
        problems = self._s["health"]["problems"]
        if not problems:
            return tag(tags.p("No problems.", class_="ok"))
        return tag(tags.ul(*[tags.li(p, class_="degraded", **{"data-field": "problem"})
                             for p in problems]))

    @renderer
    def finality_chart(self, request, tag):
        times = self._s["finality_ms"]
        if not times:
            return tag(tags.p("No transaction finalized yet.", class_="muted"))
        return tag(_bar_chart(times), tags.p(
            f"median {_median(times):g} ms, max {max(times):g} ms", class_="muted",
            **{"data-field": "finality_summary"}))

    @renderer
    def blocks(self, request, tag):
        blocks = self._s["blocks"]
        if not blocks:
            return tag(tags.p("No blocks yet.", class_="muted"))
        rows = [tags.tr(tags.td(str(b.get("height")), **{"data-field": "block_height"}),
                        tags.td(str(b.get("hash", ""))[:16]),
                        tags.td(str(len(b.get("txids", ()))), **{"data-field": "block_txs"}))
                for b in blocks]
        return tag(tags.table(tags.tr(tags.th("height"), tags.th("hash"), tags.th("txs")),
                              *rows))

    @renderer
    def peers(self, request, tag):
        peers = self._s["peers"]
        if not peers:
            return tag(tags.p("No peers connected.", class_="muted"))
        rows = [tags.tr(tags.td(str(p["address"]), **{"data-field": "peer_address"}),
                        tags.td(str(p["direction"])),
                        tags.td("–" if p["ping_ms"] is None else f"{p['ping_ms']:g}",
                                **{"data-field": "peer_ping_ms"}),
                        tags.td(str(p["version"])))
                for p in peers]
        return tag(tags.table(tags.tr(tags.th("address"), tags.th("direction"),
                                      tags.th("ping (ms)"), tags.th("version")), *rows))

    @renderer
    def masternodes(self, request, tag):
        masternodes = self._s["masternodes"]
        if not masternodes:
            return tag(tags.p("No masternodes registered.", class_="muted"))
        rows = [tags.tr(tags.td(str(mn["address"]), **{"data-field": "masternode_address"}),
                        tags.td(str(mn["tier"]), **{"data-field": "masternode_tier"}),
                        tags.td(str(mn["weight"])),
                        tags.td("yes" if mn["active"] else "no"),
                        tags.td("yes" if mn["online"] else "no"))
                for mn in masternodes]
        return tag(tags.table(tags.tr(tags.th("address"), tags.th("tier"), tags.th("weight"),
                                      tags.th("active"), tags.th("online")), *rows))


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _bar_chart(times):
    """An inline SVG with one bar per finality time, scaled to the largest."""
    top = max(times) or 1
    width = CHART_WIDTH / len(times)
    bars = []
    for i, ms in enumerate(times):
        height = max(1.0, ms / top * (CHART_HEIGHT - 4))
        bars.append(Tag("rect")(x=f"{i * width:.2f}", y=f"{CHART_HEIGHT - height:.2f}",
                              width=f"{max(width - 1, 1):.2f}", height=f"{height:.2f}",
                              fill="#3b6ea8")(Tag("title")(f"{ms:g} ms")))
    return Tag("svg")(*bars, xmlns="http://www.w3.org/2000/svg", width=str(CHART_WIDTH),
                    height=str(CHART_HEIGHT), role="img", **{"data-field": "finality_chart"},
                    **{"data-bars": str(len(times))})


def snapshot(node):
    """What the page shows, read from ``node`` (an ``INodeApi``) now."""
    queries = node.queries
    height = queries.height()
    blocks = []
    for h in range(height, max(-1, height - RECENT_BLOCKS), -1):
        block = queries.block(h)
        if block is not None:
            blocks.append(block)
    network = node.peer_network
    return {"health": queries.health(), "mempool": queries.mempool_info(),
            "peers": network.peer_info() if network is not None else [],
            "masternodes": queries.masternodes(), "blocks": blocks,
            "finality_ms": node.metrics.recent_finality_ms()}


class StatusPageResource(resource.Resource):
    """``GET /``: the status page of ``node`` (an ``INodeApi``). Other methods on
    ``/`` (``POST /`` is JSON-RPC 1.0) are not this resource's to answer."""

    isLeaf = True

    def __init__(self, node):
        super().__init__()
        self._node = node

    def render_GET(self, request):
        page = StatusPage(snapshot(self._node))
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        rendered = []
        flattenString(request, page).addBoth(rendered.append)
        body = rendered[0]  # nothing in the page waits: it is flattened at once
        if not isinstance(body, bytes):
            body.raiseException()
        return b"<!DOCTYPE html>\n" + body
