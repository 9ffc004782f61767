"""The HTTP API's parts, as its resources see them."""

from zope.interface import Interface


class IRpcMethods(Interface):
    """The JSON-RPC methods of one node, independent of HTTP."""

    def call(method, params):
        """Fire with the result of ``method`` on ``params`` (a list, a dict or
        None), or fail with ``timecoin.api.rpc.RpcError``: unknown methods,
        parameters that do not fit the method's declared schema (checked before
        it runs), and the method's own errors."""
