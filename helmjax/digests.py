"""Digests: the one home of how data, fitted states and weights (`content_digest`) and cache keys (`key_digest`)
are hashed into cache file names and versions.

A tree of dicts, lists, tuples and arrays is walked in a fixed order (dict keys sorted, their repr hashed); each leaf
contributes its shape, dtype and bytes, so two trees have the same digest exactly when they hold the same arrays.
Items read on demand (`data.items.LazyItems`) contribute their own digest instead of their decoded bytes.
"""

import hashlib
import json

import numpy as np


def content_digest(tree, length: int = 20) -> str:
    """`length` hex digits of SHA-256 over the tree's arrays (see the module docstring)."""
    h = hashlib.sha256()

    def visit(node):
        if getattr(node, "read_on_demand", False):  # `data.items.LazyItems` (a higher layer: not imported here)
            h.update(f"lazy {node.shape} {np.dtype(node.dtype).str} {node.digest}".encode())
        elif isinstance(node, dict):
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


def key_digest(key: dict, length: int = 24) -> str:
    """`length` hex digits of SHA-256 over a cache key's JSON (keys sorted): what a cached file's name carries."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:length]
