"""dagwright: typed LLM agents and coordination patterns compiled into one checked DAG.

The public API; everything else is an implementation detail.
"""

import sys as _sys

from dagwright._version import __version__
from dagwright.compiler import (
    CODES,
    Compatibility,
    CompileError,
    Diagnostic,
    Edge,
    FieldSpec,
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
from dagwright.flow import Flow

# The compiler and the Flow (above) are all `dagwright check` needs; the rest (agents, pydantic,
# the openai client, the back ends, kailash) loads on first use, so checks and pre-commit hooks start fast.
_LAZY = {
    "Agent": "dagwright.agent",
    "AgentConfig": "dagwright.agent",
    "AsyncSingleShotStrategy": "dagwright.agent",
    "BaseAgent": "dagwright.agent",
    "ExecutionResult": "dagwright.agent",
    "Strategy": "dagwright.agent",
    "Kaizen": "dagwright.kaizen",
    "InputValidationError": "dagwright.execution.errors",
    "LLMError": "dagwright.execution.errors",
    "LLMRequestError": "dagwright.execution.errors",
    "NodeExecutionError": "dagwright.execution.errors",
    "OutputParseError": "dagwright.execution.errors",
    "RunFailedError": "dagwright.execution.errors",
    "Event": "dagwright.execution.events",
    "NodeRecord": "dagwright.execution.events",
    "RunResult": "dagwright.execution.events",
    "RetryPolicy": "dagwright.execution.policy",
    "Runtime": "dagwright.backends.builtin.runner",
    "WorkflowBuilder": "dagwright.backends.kailash.nodes",
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

# Under IPython (a notebook, a console) flows, graphs, runs and agents display as drawings and tables.
# Only there: a plain import neither loads dagwright.notebook nor any drawing code.
if "IPython" in _sys.modules:
    from dagwright.notebook import register as _register_notebook

    _register_notebook()
