"""Ports from Python: a signature's fields and a function's parameters as typed IR ports, and back.

``signature_ports`` and ``function_ports`` are what ``add_agent`` and ``add_function``
declare; ``signature_of`` reads the signature an agent node's ports describe (what a
runtime rebuilds an agent from when a graph comes from JSON).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from dagwright.compiler.ir import FrozenDict, Node, Port, freeze_json, thaw_json
from dagwright.compiler.registry import function_ref
from dagwright.compiler.signature import MISSING, FieldSpec, Signature, SignatureSpec
from dagwright.compiler.types import ANY, callable_hints, from_python

__all__ = ["function_ports", "is_signature_like", "signature_of", "signature_ports"]


def is_signature_like(obj: object) -> bool:
    """A signature text, class or instance (rather than an agent or a function)."""
    return isinstance(obj, (str, SignatureSpec, Signature)) or (isinstance(obj, type) and issubclass(obj, Signature))


@functools.lru_cache(maxsize=1024)
def signature_ports(spec: SignatureSpec) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    """A signature's input and output fields as ports (an input with a default is optional)."""
    inputs = tuple(
        Port(
            f.name,
            f.type,
            f.default is MISSING,
            freeze_json(f.default) if f.default is not MISSING else MISSING,
            False,
            f.description,
        )
        for f in spec.inputs
    )
    outputs = tuple(Port(f.name, f.type, description=f.description) for f in spec.outputs)
    return inputs, outputs


def signature_of(node: Node) -> SignatureSpec:
    """The signature an agent node's ports describe (its instructions and name from the node's config)."""
    inputs = tuple(
        FieldSpec(p.name, p.type, "input", p.description, thaw_json(p.default) if p.default is not MISSING else MISSING)
        for p in node.inputs
    )
    outputs = tuple(FieldSpec(p.name, p.type, "output", p.description) for p in node.outputs)
    instructions = node.config.get("instructions", "")
    name = node.config.get("signature", "")
    return SignatureSpec(inputs, outputs, instructions if isinstance(instructions, str) else "", str(name or ""))


def function_ports(fn: Callable[..., Any], output: str) -> tuple[tuple[Port, ...], tuple[Port, ...], FrozenDict]:
    """A function's parameters as input ports, its return annotation as output ports, and the node config.

    A return annotation gives one port called ``output``; a ``TypedDict`` return one port per key;
    ``-> None`` none. Raises TypeError naming the parameter that cannot be an input.
    """
    try:
        return _function_ports_cached(fn, output)
    except TypeError as exc:
        if "unhashable" in str(exc):
            return _derive_function_ports(fn, output)
        raise


@functools.lru_cache(maxsize=4096)
def _function_ports_cached(
    fn: Callable[..., Any], output: str
) -> tuple[tuple[Port, ...], tuple[Port, ...], FrozenDict]:
    return _derive_function_ports(fn, output)


def _derive_function_ports(
    fn: Callable[..., Any], output: str
) -> tuple[tuple[Port, ...], tuple[Port, ...], FrozenDict]:
    label = function_ref(fn)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of {label}: {exc}") from None
    try:
        hints = callable_hints(fn)
    except Exception as exc:  # an annotation that does not evaluate (forward ref, missing import)
        raise TypeError(f"cannot evaluate the annotations of {label}: {exc}") from None
    inputs = [_parameter_port(label, param, hints) for param in sig.parameters.values()]
    outputs, returns_dict = _return_ports(label, hints, output)
    config: dict[str, Any] = {"function": label}
    if returns_dict:
        config["returns"] = "dict"
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):  # or its __call__
        config["async"] = True
    return tuple(inputs), outputs, FrozenDict(config)


def _parameter_port(label: str, param: inspect.Parameter, hints: dict[str, Any]) -> Port:
    if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
        raise TypeError(f"{label}: parameter '{param}' cannot be a node input; name every input")
    if param.kind is param.POSITIONAL_ONLY:
        raise TypeError(f"{label}: parameter {param.name!r} is positional-only; inputs are passed by name")
    try:
        ptype = from_python(hints[param.name]) if param.name in hints else ANY
    except TypeError as exc:
        raise TypeError(f"{label}: parameter {param.name!r}: {exc}") from None
    default: Any = MISSING
    if param.default is not param.empty:
        try:
            default = freeze_json(param.default)
        except TypeError:
            default = MISSING  # a non-JSON default stays the function's own: the port is optional
    return Port(param.name, ptype, param.default is param.empty, default)


def _return_ports(label: str, hints: dict[str, Any], output: str) -> tuple[tuple[Port, ...], bool]:
    """The output ports a return annotation gives, and whether the function returns a dict of them."""
    returned = hints.get("return", inspect.Signature.empty if "return" not in hints else None)
    if returned is inspect.Signature.empty:
        return (Port(output, ANY),), False
    if returned is None or returned is type(None):
        return (), False
    if typing.is_typeddict(returned):
        fields = typing.get_type_hints(returned)
        return tuple(Port(k, from_python(v)) for k, v in fields.items()), True
    try:
        return (Port(output, from_python(returned)),), False
    except TypeError as exc:
        raise TypeError(f"{label}: return annotation: {exc}") from None
