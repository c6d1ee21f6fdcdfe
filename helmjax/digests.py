"""Content digests: the one rule by which data, fitted states and weights are hashed into cache keys and versions.

A tree of dicts, lists, tuples and arrays is walked in a fixed order (dict keys sorted, their repr hashed); each leaf
contributes its shape, dtype and bytes, so two trees have the same digest exactly when they hold the same arrays.
"""

import hashlib

import numpy as np


def content_digest(tree, length: int = 20) -> str:
    """`length` hex digits of SHA-256 over the tree's arrays (see the module docstring)."""
    h = hashlib.sha256()

    def visit(node):
        if isinstance(node, dict):
            for key in sorted(node, key=str):
                h.update(repr(key).encode())
                visit(node[key])
        elif isinstance(node, (list, tuple)):
            for item in node:
                visit(item)
        else:
            array = np.ascontiguousarray(np.asarray(node))
            h.update(str((array.shape, array.dtype.str)).encode())
            h.update(array.tobytes())

    visit(tree)
    return h.hexdigest()[:length]
