"""The RPC reference (doc/rpc.md), rendered from the method catalog.

``python -m timecoin.api.reference > doc/rpc.md`` regenerates it; a test
checks that the file in the repository is up to date.
"""

import json
import sys

from timecoin.api.catalog import METHODS

_HEADER = """\
# RPC reference

<!-- Generated from timecoin/api/catalog.py by `python -m timecoin.api.reference`:
     edit the catalog, not this file. -->

JSON-RPC 2.0 on `POST /rpc`, HTTP Basic auth (the cookie, or `rpcuser`/`rpcpassword`).
Parameters are given by position (an array) or by name (an object); an
optional parameter given as `null` takes its default. Parameters are checked
before the method runs: one that does not fit is answered with error -32602
and a one-line message naming it. The `help` method answers from the same
table. Limits on requests are in [limits.md](limits.md).

`POST /` takes the same methods, with the same authentication, in bitcoind's
JSON-RPC 1.0 style, for bitcoin client libraries (python-bitcoinrpc's
`AuthServiceProxy`, for one): a request is `{"method", "params", "id"}` (any
`version` or `jsonrpc` member is ignored) and every reply holds `result`,
`error` (`{"code", "message"}` or `null`) and `id`. As bitcoind does, a single
call that fails is answered with HTTP 404 for an unknown method, 400 for an
invalid request and 500 for any other error; a batch (an array) is answered
200.

| method | parameters | summary |
|---|---|---|
"""


def _cell(text):
    return text.replace("|", "\\|")


def render():
    """The whole of doc/rpc.md, as text."""
    out = [_HEADER]
    for spec in METHODS:
        params = ", ".join(p.name if p.required else f"[{p.name}]" for p in spec.params) or "–"
        out.append(f"| [`{spec.name}`](#{spec.name}) | {params} | {_cell(spec.help)} |\n")
    for spec in METHODS:
        out.append(f"\n## {spec.name}\n\n`{spec.usage()}`\n\n{spec.help}\n\n")
        if spec.params:
            out.append("| parameter | type | required | default | meaning |\n"
                       "|---|---|---|---|---|\n")
            for p in spec.params:
                default = "–" if p.required else f"`{json.dumps(p.default)}`"
                out.append(f"| `{p.name}` | {_cell(p.kind.description)} | "
                           f"{'yes' if p.required else 'no'} | {default} | {_cell(p.help)} |\n")
            out.append("\n")
        else:
            out.append("No parameters.\n\n")
        out.append(f"Result: {spec.result}.\n")
    return "".join(out)


def main():
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
