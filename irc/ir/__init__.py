"""irc's graph IR: types, graph, printer, parser, verifier and reference interpreter."""

from irc.ir.graph import Graph, Location, Node, Value
from irc.ir.types import DType, QuantParams, SymDim, TensorType

__all__ = ["Graph", "Location", "Node", "Value", "DType", "QuantParams", "SymDim", "TensorType"]
