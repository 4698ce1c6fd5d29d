"""The Kaizen facade: one object that makes signatures, agents and coordination patterns.

::

    kaizen = Kaizen(config={"model": "gpt-4o-mini"})
    sig = kaizen.create_signature("question: str -> answer: str, confidence: float")
    qa = kaizen.create_agent("qa", signature=sig)
    debate = kaizen.create_debate_workflow(agents=[optimist, skeptic, judge], topic="...", rounds=3)

Agents made here (including those a pattern makes from ``("role", {config})``)
start from the facade's config; their own config overrides it key by key. Every
pattern factory returns a Flow; the same patterns are plain functions in
:mod:`dagwright.patterns`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dagwright import patterns
from dagwright.agent import AGENTS, Agent, AgentConfig, Strategy
from dagwright.compiler.ports import is_signature_like
from dagwright.compiler.redact import config_to_dict
from dagwright.compiler.signature import Signature, make_signature
from dagwright.flow import Flow

__all__ = ["Kaizen"]


class Kaizen:
    """Factory for signatures and agents; ``config`` holds defaults for every agent it creates."""

    def __init__(self, config: object = None) -> None:
        self.config = AgentConfig.coerce(config, owner="Kaizen")
        self._defaults = (
            config_to_dict(config)
            if config is not None and not isinstance(config, AgentConfig)
            else (self.config.model_dump(exclude_unset=True))
        )

    def create_signature(
        self,
        text: str,
        description: str = "",
        *,
        name: str = "Signature",
        descriptions: Mapping[str, str] | None = None,
        types: Mapping[str, object] | None = None,
    ) -> type[Signature]:
        """A Signature class from ``"inputs -> outputs"`` text, with instructions and field descriptions."""
        return make_signature(text, description, name=name, types=types, descriptions=descriptions)

    def create_agent(
        self,
        name: str,
        signature: object = None,
        config: object = None,
        *,
        strategy: Strategy | None = None,
        tools: Iterable[object] | None = None,
    ) -> Agent:
        """An agent named ``name``, starting from the facade's config.

        The second argument is a signature, or (as the Kaizen ADR writes it) the config:
        ``create_agent("researcher", {"model": "gpt-4o"})``. Without a signature the agent is
        free-form: inputs of any name go into the prompt, the reply is text in ``answer``.
        ``tools=[...]``: functions, :class:`~dagwright.llm.tools.Tool` s and MCP servers it may call.
        """
        if signature is not None and not is_signature_like(signature):
            if config is not None:
                raise TypeError(
                    f"create_agent({name!r}): the second argument is a signature or a config; got a "
                    f"{type(signature).__name__} and config= too"
                )
            signature, config = None, signature
        merged: dict[str, Any] = dict(self._defaults)
        if config is not None:
            merged.update(
                config_to_dict(config) if not isinstance(config, AgentConfig) else config.model_dump(exclude_unset=True)
            )
        return Agent(name, signature, merged, strategy, tools=tools)

    # ---- patterns

    def create_pipeline(self, steps: Sequence[object], *, name: str = "pipeline") -> Flow:
        """Steps in order, each step's outputs feeding the next step's inputs by name (or a ``mapping``)."""
        return patterns.pipeline(steps, name=name, defaults=self._defaults, factory=AGENTS)

    def create_debate_workflow(
        self, agents: Sequence[object], topic: str | None = None, rounds: int = 3, *, name: str = "debate"
    ) -> Flow:
        """Debaters (all agents but the last) argue for ``rounds`` rounds; the last agent judges."""
        return patterns.debate(agents, topic, rounds, name=name, defaults=self._defaults, factory=AGENTS)

    def create_consensus_workflow(
        self,
        agents: Sequence[object],
        decision_criteria: str = "majority_vote",
        confidence_threshold: float = 0.8,
        weights: Mapping[str, float] | None = None,
        *,
        name: str = "consensus",
    ) -> Flow:
        """Agents decide in parallel; a vote node aggregates under ``decision_criteria``."""
        return patterns.consensus(
            agents, decision_criteria, confidence_threshold, weights, name=name, defaults=self._defaults, factory=AGENTS
        )

    def create_supervisor_agent(self, name: str, config: Mapping[str, Any]) -> Flow:
        """A supervisor that plans, hands subtasks to ``config["workers"]`` and reviews their results."""
        return patterns.supervisor(name, config, defaults=self._defaults, factory=AGENTS)

    def create_router(self, router: object, routes: Sequence[object], *, name: str = "router") -> Flow:
        """``router`` picks which of ``routes`` handles the request; the others are skipped."""
        return patterns.router(router, routes, name=name, defaults=self._defaults, factory=AGENTS)

    def create_parallel_map(self, step: object, over: str, *, concurrency: int = 4, name: str = "map") -> Flow:
        """Run ``step`` once per item of the list input ``over``, ``concurrency`` at a time."""
        return patterns.parallel_map(
            step, over, concurrency=concurrency, name=name, defaults=self._defaults, factory=AGENTS
        )
