"""Prompts: a signature and its inputs as chat messages.

The system message holds the instructions (the signature's docstring plus the
configured system prompt) and describes the output fields; the user message
renders the inputs with a jinja2 template in a sandboxed environment, so a
user-supplied template cannot reach Python internals. Memory turns go between
the two.

A template is untrusted code, so its render is bounded as well as sandboxed:

- ``MAX_TEMPLATE_OUTPUT`` characters for the rendered message, for the template's source and for any
  one value the template makes (``'a' * n``, ``~``, ``|center(n)``, ``'%*s'``, ``'{:>n}'.format``...):
  operators, filters and calls whose result would be larger are refused before they allocate it;
- ``MAX_TEMPLATE_RANGE`` items for ``range()``;
- ``MAX_TEMPLATE_STEPS`` steps of work (loop iterations, calls, filters, operators, printed values)
  and ``MAX_TEMPLATE_SECONDS`` of wall-clock time per render;
- no ``{% import %}``, ``{% include %}`` or ``{% extends %}``: a template renders alone;
- no change to the inputs: the template gets a deep copy of them, and lists, dicts and sets (the
  copy's or its own) cannot be changed in place.

Any failure to parse or render is a :class:`PromptError` naming the agent. The default message
(no template) is built without jinja2 and is not bounded.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dagwright.compiler.redact import prompt_context
from dagwright.compiler.signature import SignatureSpec
from dagwright.llm.structured import StructuredSetting, described, schema_block

__all__ = [
    "DEFAULT_TEMPLATE",
    "MAX_TEMPLATE_OUTPUT",
    "MAX_TEMPLATE_RANGE",
    "MAX_TEMPLATE_SECONDS",
    "MAX_TEMPLATE_STEPS",
    "PromptError",
    "build_messages",
]

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = """\
{%- for field in fields %}
{{ field.name }}{% if field.description %} ({{ field.description }}){% endif %}:
{{ field.text }}
{% endfor -%}
"""

MAX_TEMPLATE_OUTPUT = 1_000_000
"""Characters: the most a rendered template, its source, or any one value it makes may have (1 MB of text,
about 250k tokens: more than a prompt needs, little enough to keep in memory many times over)."""

MAX_TEMPLATE_RANGE = 100_000
"""Items: the longest ``range()`` a template may make (jinja2's own sandbox figure)."""

MAX_TEMPLATE_STEPS = 1_000_000
"""The work of one render: loop iterations, calls, filters, operators and printed values (about a second)."""

MAX_TEMPLATE_SECONDS = 5.0
"""Wall-clock seconds of one render: the second guard, for steps that are each slow."""

# A number a prompt can show has at most 4300 digits (Python's int-to-text limit), about 14,300 bits;
# a larger product or power is only CPU time.
_MAX_INT_BITS = 1 << 16


class PromptError(ValueError):
    """A prompt template that does not parse or render; names the agent and the template's problem."""


# --------------------------------------------------------------------------- the budget of one render


@dataclass(slots=True)
class _Budget:
    steps: int
    deadline: float


# Set around each render; None while a template compiles (jinja2 folds constants then, and there is no
# render to bound: the same checks run again when the template renders).
_budget: ContextVar[_Budget | None] = ContextVar("dagwright_template_budget", default=None)


def _step() -> None:
    budget = _budget.get()
    if budget is None:
        return
    budget.steps -= 1
    if budget.steps < 0:
        raise PromptError(
            f"it takes more than {MAX_TEMPLATE_STEPS} steps (loop iterations, calls, filters, operators, "
            "printed values; MAX_TEMPLATE_STEPS)"
        )
    if time.monotonic() > budget.deadline:
        raise PromptError(f"it runs longer than {MAX_TEMPLATE_SECONDS} seconds (MAX_TEMPLATE_SECONDS)")


def _refuse(what: str, size: int) -> None:
    if size > MAX_TEMPLATE_OUTPUT:
        raise PromptError(
            f"{what} would have length {size} (characters, or items), more than the {MAX_TEMPLATE_OUTPUT} a "
            "template may make (MAX_TEMPLATE_OUTPUT)"
        )


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, bytearray, list, tuple, dict, set, frozenset)) else 0


def _bounded(value: Any, what: str = "a value") -> Any:
    _refuse(what, _size(value))
    return value


# --------------------------------------------------------------------------- sizes, before they are made


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``'a' * n``, ``x ** n``, ``a + b`` and ``'%*s' % ...`` whose result is over the bounds."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "*" and ints:
        if left.bit_length() + right.bit_length() > _MAX_INT_BITS:
            raise PromptError(f"a product of more than {_MAX_INT_BITS} bits is refused")
    elif operator == "*":
        seq, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(times, int):
            _refuse("a repetition ('*')", _size(seq) * times)
    elif operator == "**" and ints and right > 0 and abs(left) > 1:
        if left.bit_length() * right > _MAX_INT_BITS:
            raise PromptError(f"a power of more than {_MAX_INT_BITS} bits is refused")
    elif operator == "+":
        _refuse("a sum ('+')", _size(left) + _size(right))
    elif operator == "%" and isinstance(left, str):
        _check_percent(left, right)


# A printf-style conversion: its width and precision, each a number or '*' (taken from the arguments).
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _check_percent(text: str, args: Any) -> None:
    starred = False
    for spec in _PERCENT.finditer(text):
        for number in spec.groups():
            starred = starred or number == "*"
            if number and number != "*":
                _refuse("a '%' format width", int(number))
    if starred:
        _refuse_int_args("a '%*' format width", args if isinstance(args, tuple) else (args,), {})


def _check_format(text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """``str.format``: the widths written in ``text``, and those taken from the arguments (``{:{}}``)."""
    nested = False
    for _, _, spec, _ in string.Formatter().parse(text):
        if spec:
            nested = nested or "{" in spec
            for number in re.findall(r"\d+", spec):
                _refuse("a format width", int(number))
    if nested:
        _refuse_int_args("a format width", args, kwargs)


def _refuse_int_args(what: str, args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int):
            _refuse(what, value)


def _width(value: Any, width: Any = 80, *rest: Any) -> int:
    return width if isinstance(width, int) else 0


def _count(value: Any, count: Any, *rest: Any) -> int:
    return count if isinstance(count, int) else 0


def _replaced(s: Any, old: Any, new: Any, *rest: Any) -> int:
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    return len(s) + (s.count(old) if old else len(s) + 1) * len(new)


def _indented(s: Any, width: Any = 4, *rest: Any) -> int:
    pad = width if isinstance(width, int) else len(width) if isinstance(width, str) else 0
    return len(s) + (s.count("\n") + 1) * pad if isinstance(s, str) else 0


def _expanded(s: Any, tabsize: Any = 8) -> int:
    return len(s) + s.count("\t") * tabsize if isinstance(s, str) and isinstance(tabsize, int) else 0


def _joined(items: Any, separator: Any) -> int:
    if not isinstance(items, (list, tuple)):
        return 0
    return sum(len(x) if isinstance(x, str) else 1 for x in items) + len(items) * len(str(separator))


def _formatted(value: Any, *args: Any, **kwargs: Any) -> int:
    _check_percent(str(value), kwargs or args)
    return 0


# What each filter and str method that can make much from little would make, from the arguments of
# its call (the same names and order, so a call binds here as it binds there).
_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "center": _width,
    "indent": _indented,
    "replace": _replaced,
    "join": lambda value, d="", *rest: _joined(value, d),
    "batch": _count,
    "slice": _count,
    "format": _formatted,
}
_STR_METHOD_SIZES: dict[str, Callable[..., int]] = {
    "center": _width,
    "ljust": _width,
    "rjust": _width,
    "zfill": _width,
    "expandtabs": _expanded,
    "replace": _replaced,
    "join": lambda separator, items, *rest: _joined(items, separator),
}


def _check_size(sizes: Callable[..., int], what: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    try:
        size = sizes(*args, **kwargs)
    except TypeError:  # arguments the call itself rejects: it says so, with its own message
        return
    _refuse(what, size)


# --------------------------------------------------------------------------- the environment


def _range(*args: int) -> range:
    numbers = range(*args)
    try:
        length = len(numbers)
    except OverflowError:  # longer than a C ssize_t
        length = MAX_TEMPLATE_RANGE + 1
    if length > MAX_TEMPLATE_RANGE:
        raise PromptError(f"range() of more than {MAX_TEMPLATE_RANGE} items (MAX_TEMPLATE_RANGE)")
    return numbers


def _finalize(value: Any) -> str:
    """Every ``{{ ... }}``, in the output, a ``{% set %}`` block or a macro, is a step and is bounded."""
    _step()
    return str(_bounded(value if isinstance(value, str) else str(value), "a printed value"))


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    sizes = _FILTER_SIZES.get(name)
    # pass_context / pass_eval_context / pass_environment filters get that object before the value.
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(function)  # keeps jinja_pass_arg, which says how jinja2 calls the filter
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _step()
        if sizes is not None:
            _check_size(sizes, f"the filter {name}", args[skip:], kwargs)
        return _bounded(function(*args, **kwargs), f"the filter {name}")

    return bounded


_LOADING_TAGS: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "import",
}


class _Generator(CodeGenerator):
    """Compiles a template checked and instrumented: no loading of other templates, every loop item a step,
    every ``~`` bounded."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for load in node.find_all(tuple(_LOADING_TAGS)):
            # Without this, jinja2 fails at render time with a TypeError (the environment has no loader).
            tag = _LOADING_TAGS[type(load)]
            raise PromptError(
                f"a prompt template cannot load other templates ({{% {tag} %}} on line {load.lineno}); it renders alone"
            )
        for loop in node.find_all(nodes.For):
            counted = nodes.EnvironmentAttribute("counted", lineno=loop.lineno)
            loop.iter = nodes.Call(counted, [loop.iter], [], None, None, lineno=loop.lineno)
        super().visit_Template(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded(")
        super().visit_Concat(node, frame)
        self.write(")")


class _Environment(ImmutableSandboxedEnvironment):
    """jinja2's sandbox (no Python internals; lists, dicts and sets read-only) with every way a template
    makes a value, repeats work or loads a template bounded: the limits at the top of the module."""

    code_generator_class = _Generator
    # These operators go through call_binop (so they are checked, and no longer folded while compiling).
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=_finalize)
        self.globals["range"] = _range
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _step()
        _check_binop(operator, left, right)
        return _bounded(super().call_binop(context, operator, left, right), f"the operator {operator!r}")

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _step()
        owner = getattr(obj, "__self__", None)
        sizes = _STR_METHOD_SIZES.get(getattr(obj, "__name__", "")) if isinstance(owner, str) else None
        if sizes is not None:
            _check_size(sizes, f"str.{obj.__name__}", (owner, *args), kwargs)
        return _bounded(super().call(context, obj, *args, **kwargs), "a call")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        text: str = value.__self__

        @functools.wraps(sandboxed)
        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if value.__name__ == "format_map" and args and isinstance(args[0], Mapping) else None
            _check_format(text, args, kwargs if mapping is None else mapping)
            return sandboxed(*args, **kwargs)

        return checked

    def concat(self, parts: Iterable[str]) -> str:
        # What a {% set %} block, a macro or a recursive loop collects: checked before it is joined.
        pieces = list(parts)
        _refuse("a block", sum(map(len, pieces)))
        return "".join(pieces)

    def counted(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            _step()
            yield item

    def bounded(self, value: Any) -> Any:
        return _bounded(value, "a concatenation ('~')")


_env = _Environment()


@functools.lru_cache(maxsize=256)
def _template(source: str) -> Template:
    if len(source) > MAX_TEMPLATE_OUTPUT:
        raise PromptError(
            f"the prompt template is {len(source)} characters long, more than the {MAX_TEMPLATE_OUTPUT} its "
            "output may have (MAX_TEMPLATE_OUTPUT)"
        )
    try:
        return _env.from_string(source)
    except PromptError:
        raise
    except TemplateError as exc:
        raise PromptError(f"the prompt template does not parse: {exc}") from None
    except Exception as exc:  # a number too long to read, nesting too deep for the parser, no memory
        raise PromptError(f"the prompt template does not parse: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (PromptError, TemplateError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --------------------------------------------------------------------------- messages


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError):
        return str(value)


def _json_default(value: Any) -> Any:
    """Models (validated inputs of a model type) as their JSON data; anything else as its text."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


@functools.lru_cache(maxsize=512)
def system_message(spec: SignatureSpec, system_prompt: str | None, mode: StructuredSetting, context: str = "") -> str:
    parts: list[str] = []
    if system_prompt:
        parts.append(system_prompt.strip())
    if context:
        parts.append(context)
    if spec.instructions:
        parts.append(spec.instructions.strip())
    if not parts:
        parts.append("Complete the task from the given inputs.")
    lines = ["Reply with one JSON object with exactly these fields:"]
    for f in spec.outputs:
        desc = f" - {f.description}" if f.description else ""
        lines.append(f"- {f.name} ({described(f.type)}){desc}")
    parts.append("\n".join(lines))
    if mode == "prompt":
        parts.append(f"The JSON object must match this JSON schema:\n{schema_block(spec)}")
    return "\n\n".join(parts)


def _default_user_message(spec: SignatureSpec, inputs: dict[str, Any]) -> str:
    # DEFAULT_TEMPLATE, rendered without jinja2: the same text (property-tested), a tenth of the time.
    parts: list[str] = []
    for f in spec.inputs:
        described = f" ({f.description})" if f.description else ""
        parts.append(f"\n{f.name}{described}:\n{_as_text(inputs.get(f.name))}\n")
    return "".join(parts).strip()


def _private_copy(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as the template sees them: a deep copy, so that nothing it calls changes the values the
    cache key, the audit log and the rest of the run see. A value that cannot be copied is passed as it is
    (the sandbox still keeps its lists, dicts and sets read-only)."""
    try:
        return copy.deepcopy(inputs)
    except Exception:
        copied: dict[str, Any] = {}
        for name, value in inputs.items():
            try:
                copied[name] = copy.deepcopy(value)
            except Exception:
                copied[name] = value
        return copied


def _render(template: Template, spec: SignatureSpec, inputs: dict[str, Any]) -> str:
    own = _private_copy(inputs)
    fields = [
        {"name": f.name, "description": f.description, "value": own.get(f.name), "text": _as_text(own.get(f.name))}
        for f in spec.inputs
    ]
    # `fields` and `inputs` win over inputs of those names (still there as inputs.fields, inputs.inputs).
    variables = {**own, "fields": fields, "inputs": own}
    token = _budget.set(_Budget(MAX_TEMPLATE_STEPS, time.monotonic() + MAX_TEMPLATE_SECONDS))
    stream = template.generate(variables)
    chunks: list[str] = []
    size = 0
    try:
        # Consumed piece by piece, so a template that writes too much stops at the bound, not after it.
        for chunk in stream:
            size += len(chunk)
            _refuse("the rendered message", size)
            chunks.append(chunk)
    finally:
        _budget.reset(token)
    return "".join(chunks).strip()


def user_message(spec: SignatureSpec, inputs: dict[str, Any], template: str | None, agent: str = "agent") -> str:
    """The user message: ``inputs`` rendered by ``template`` (bounded, in the sandbox), or without a template
    each input under its name and description. Any failure of the template is a :class:`PromptError`
    naming ``agent``."""
    if template is None:
        return _default_user_message(spec, inputs)
    try:
        compiled = _template(template)
    except PromptError as exc:
        raise PromptError(f"{agent}: {exc}") from None
    try:
        return _render(compiled, spec, inputs)
    except Exception as exc:  # whatever the template did: the sandbox's refusals, our bounds, its own errors
        raise PromptError(f"{agent}: the prompt template failed to render: {_reason(exc)}") from None


def build_messages(
    spec: SignatureSpec,
    inputs: dict[str, Any],
    *,
    system_prompt: str | None = None,
    template: str | None = None,
    mode: StructuredSetting = "json_schema",
    history: list[dict[str, str]] | None = None,
    agent: str = "agent",
    context: Mapping[str, Any] | None = None,
    system_role: str = "system",
) -> list[dict[str, str]]:
    """The chat messages for one call: system (with the config's ``context``: role settings such as
    ``{"focus": "technical"}``, minus what looks secret, see :func:`prompt_context`), memory turns, then
    the rendered inputs.

    ``system_role="user"`` puts the instructions at the head of the first user message instead, for chat
    templates that drop system messages (llama-cpp-python's ``gemma``); the roles still alternate."""
    context_text = ""
    if context:
        shown, left_out = prompt_context(context)
        if left_out:
            _warn_left_out(agent, left_out)
        if shown:
            context_text = "Context: " + ", ".join(f"{k}={_as_text(v)}" for k, v in shown.items())
    instructions = system_message(spec, system_prompt, mode, context_text)
    messages = [{"role": "system", "content": instructions}] if system_role == "system" else []
    if history:
        messages.extend(history)
    messages.append({"role": "user", "content": user_message(spec, inputs, template, agent)})
    if system_role != "system":
        first = next(i for i, m in enumerate(messages) if m["role"] == "user")
        messages[first] = {"role": "user", "content": f"{instructions}\n\n{messages[first]['content']}"}
    return messages


_warned: set[tuple[str, str]] = set()


def _warn_left_out(agent: str, keys: list[str]) -> None:
    """Say once per agent and key that a config key stays out of the prompt (it looks like a secret)."""
    new = [key for key in keys if (agent, key) not in _warned]
    if new:
        _warned.update((agent, key) for key in new)
        logger.warning(
            "%s: config key(s) %s look like secrets and are not sent to the model as role context",
            agent,
            ", ".join(map(repr, new)),
        )
