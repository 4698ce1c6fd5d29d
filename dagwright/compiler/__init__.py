"""The compiler, dagwright's core: signatures and types, the flow builder (front end), the IR and its
validation passes (middle). It imports nothing else of dagwright; everything else builds on it."""

from dagwright.compiler.builder import FlowBuilder
from dagwright.compiler.connections import NodeRef, PortRef
from dagwright.compiler.diagnostics import CODES, CompileError, Diagnostic
from dagwright.compiler.ir import Edge, Graph, IRFormatError, Node, Port, SourceLocation
from dagwright.compiler.passes import PASSES, validate
from dagwright.compiler.registry import FunctionRegistry, UnresolvedReferenceError
from dagwright.compiler.signature import (
    FieldSpec,
    InputField,
    OutputField,
    Signature,
    SignatureError,
    SignatureSpec,
    as_signature,
    make_signature,
    parse_signature,
)
from dagwright.compiler.types import Compatibility, TypeExpr, is_assignable, parse_type, register_type

__all__ = [
    "CODES",
    "PASSES",
    "Compatibility",
    "CompileError",
    "Diagnostic",
    "Edge",
    "FieldSpec",
    "FlowBuilder",
    "FunctionRegistry",
    "Graph",
    "IRFormatError",
    "InputField",
    "Node",
    "NodeRef",
    "OutputField",
    "Port",
    "PortRef",
    "Signature",
    "SignatureError",
    "SignatureSpec",
    "SourceLocation",
    "TypeExpr",
    "UnresolvedReferenceError",
    "as_signature",
    "is_assignable",
    "make_signature",
    "parse_signature",
    "parse_type",
    "register_type",
    "validate",
]
