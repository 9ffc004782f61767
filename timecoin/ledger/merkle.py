"""The Merkle tree of a block's txids: its root (``tx_root``) and inclusion paths.

The tree is RFC 6962's (Certificate Transparency), with BLAKE2b-256:

* a leaf is ``H(0x00 || txid)``, an inner node ``H(0x01 || left || right)``;
* a list of ``n > 1`` leaves splits at ``k``, the largest power of two below
  ``n``: the root is the node of the first ``k`` leaves' root and the rest's;
* the root of no leaves is ``H(b"")``.

Leaves are never duplicated to fill a level (the flaw of Bitcoin's tree, where
two lists of txids can share a root), and the prefixes keep a leaf from
passing as an inner node. A path (:func:`merkle_path`) lists the sibling
hashes from the leaf up; :func:`verify_path` recomputes the root from the
leaf's index and the tree's size. A path proves inclusion; the position it
proves is bound only together with the size (trees of different sizes can
share a path's shape), so a proof takes the size from the block (its txid
count), never from the prover alone.
"""

import hashlib

__all__ = ["leaf_hash", "merkle_path", "merkle_root", "verify_path"]

_LEAF = b"\x00"
_NODE = b"\x01"


def _h(data):
    return hashlib.blake2b(data, digest_size=32).digest()


def leaf_hash(txid):
    """The leaf of ``txid``."""
    return _h(_LEAF + txid)


def _node(left, right):
    return _h(_NODE + left + right)


def _split(n):
    """The largest power of two below ``n`` (``n > 1``)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root_of_leaves(leaves):
    if not leaves:
        return _h(b"")
    level = list(leaves)
    # Bottom-up with carried odd nodes gives the same tree as the recursive split.
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def merkle_root(txids):
    """The root of the tree over ``txids`` (32 bytes each), in order."""
    return _root_of_leaves([leaf_hash(t) for t in txids])


def merkle_path(txids, index):
    """The sibling hashes proving ``txids[index]``, from the leaf upwards."""
    if not 0 <= index < len(txids):
        raise IndexError(f"index {index} outside a tree of {len(txids)} leaves")
    leaves = [leaf_hash(t) for t in txids]
    path = []
    while len(leaves) > 1:
        k = _split(len(leaves))
        if index < k:
            path.append(_root_of_leaves(leaves[k:]))
            leaves = leaves[:k]
        else:
            path.append(_root_of_leaves(leaves[:k]))
            leaves, index = leaves[k:], index - k
    return list(reversed(path))


def verify_path(txid, index, size, path, root):
    """True if ``path`` proves ``txid`` is leaf ``index`` of a ``size``-leaf tree
    with ``root``."""
    if not 0 <= index < size:
        return False
    # The sides, from the top down, of the splits that lead to the leaf.
    sides = []
    lo, n = index, size
    while n > 1:
        k = _split(n)
        if lo < k:
            sides.append("left")
            n = k
        else:
            sides.append("right")
            lo, n = lo - k, n - k
    if len(sides) != len(path):
        return False
    node = leaf_hash(txid)
    for side, sibling in zip(reversed(sides), path, strict=True):
        if len(sibling) != 32:
            return False
        node = _node(node, sibling) if side == "left" else _node(sibling, node)
    return node == root
