"""Naming where a node came from, for grouping by layer in reports.

A node's Keras layer when the frontend knew it; otherwise the TensorFlow name scope of its first location name
(``model/conv1/Conv2D`` -> ``model/conv1``, TensorFlow's call wrappers dropped), which is what a ``.tflite`` written
by TensorFlow's converter keeps of the layers.
"""

from __future__ import annotations

import re

from irc.ir.graph import Node

NO_LAYER = "(no layer)"
# Path components TensorFlow wraps names in, which a converter may drop ("StatefulPartitionedCall/model/dense/MatMul"
# in a SavedModel is "model/dense/MatMul" in the .tflite TensorFlow writes).
_WRAPPERS = re.compile(r"^((Stateful)?PartitionedCall(_\d+)?|__inference_.*)$")


def strip_wrappers(name: str) -> str:
    parts = name.split("/")
    while len(parts) > 1 and _WRAPPERS.match(parts[0]):
        parts = parts[1:]
    return "/".join(parts)


def layer_name(node: Node) -> str:
    if node.loc.layers:
        return ", ".join(node.loc.layers)
    for name in node.loc.names:
        scope = strip_wrappers(name).rpartition("/")[0]
        if scope:
            return scope
    return NO_LAYER
