"""dagwright: typed LLM agents and coordination patterns compiled into one checked DAG.

The public API; everything else is an implementation detail.
"""

from dagwright.compiler import (
    CODES,
    Compatibility,
    CompileError,
    Diagnostic,
    Edge,
    FieldSpec,
    Flow,
    FunctionRegistry,
    Graph,
    InputField,
    IRFormatError,
    Node,
    NodeRef,
    OutputField,
    Port,
    PortRef,
    Signature,
    SignatureError,
    SignatureSpec,
    TypeExpr,
    UnresolvedReferenceError,
    as_signature,
    is_assignable,
    make_signature,
    parse_signature,
    parse_type,
    register_type,
    validate,
)

__version__ = "0.1.0"


# The compiler (above) is all `dagwright check` needs; the runtime side (agents, pydantic,
# the openai client, kailash) loads on first use, so checks and pre-commit hooks start fast.
_LAZY = {
    "Agent": "dagwright.agent",
    "AgentConfig": "dagwright.agent",
    "AsyncSingleShotStrategy": "dagwright.agent",
    "BaseAgent": "dagwright.agent",
    "ExecutionResult": "dagwright.agent",
    "Strategy": "dagwright.agent",
    "Kaizen": "dagwright.kaizen",
    "InputValidationError": "dagwright.runtime.errors",
    "LLMError": "dagwright.runtime.errors",
    "LLMRequestError": "dagwright.runtime.errors",
    "NodeExecutionError": "dagwright.runtime.errors",
    "OutputParseError": "dagwright.runtime.errors",
    "RunFailedError": "dagwright.runtime.errors",
    "Event": "dagwright.runtime.events",
    "NodeRecord": "dagwright.runtime.events",
    "RunResult": "dagwright.runtime.events",
    "RetryPolicy": "dagwright.runtime.policy",
    "Runtime": "dagwright.runtime.runner",
    "WorkflowBuilder": "dagwright.nodes.kailash",
    "patterns": "dagwright.patterns",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dagwright' has no attribute {name!r}")
    import importlib

    loaded = importlib.import_module(module)
    value = loaded if module.endswith("." + name) else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "CODES",
    "Agent",
    "AgentConfig",
    "AsyncSingleShotStrategy",
    "BaseAgent",
    "Compatibility",
    "CompileError",
    "Diagnostic",
    "Edge",
    "Event",
    "ExecutionResult",
    "FieldSpec",
    "Flow",
    "FunctionRegistry",
    "Graph",
    "IRFormatError",
    "InputField",
    "InputValidationError",
    "Kaizen",
    "LLMError",
    "LLMRequestError",
    "Node",
    "NodeExecutionError",
    "NodeRecord",
    "NodeRef",
    "OutputField",
    "OutputParseError",
    "Port",
    "PortRef",
    "RetryPolicy",
    "RunFailedError",
    "RunResult",
    "Runtime",
    "Signature",
    "SignatureError",
    "SignatureSpec",
    "Strategy",
    "TypeExpr",
    "UnresolvedReferenceError",
    "WorkflowBuilder",
    "__version__",
    "as_signature",
    "is_assignable",
    "make_signature",
    "parse_signature",
    "parse_type",
    "register_type",
    "validate",
]
