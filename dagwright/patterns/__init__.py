"""Coordination patterns, each expanding into a checked subgraph of the IR.

Every factory returns a :class:`~dagwright.flow.Flow` (so ``.compile()``,
``.run()``, drawing and lowering work on it), whose nodes carry the pattern's name
as their group path. Patterns compose: a Flow can be a pipeline step, a worker of a
supervisor, a consensus voter or a mapped step. Agents a pattern makes for roles
come from the ``factory=`` it is given (see :class:`dagwright.agent.AgentFactory`).
"""

import os

from dagwright.compiler.location import register_internal_path
from dagwright.patterns.consensus import RULES, consensus
from dagwright.patterns.debate import debate
from dagwright.patterns.parallel_map import parallel_map
from dagwright.patterns.pipeline import pipeline
from dagwright.patterns.router import router
from dagwright.patterns.supervisor import supervisor

# Nodes a pattern adds are located at the user's call of the pattern, not in here.
register_internal_path(os.path.dirname(os.path.abspath(__file__)) + os.sep)
register_internal_path(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kaizen.py"))

__all__ = ["RULES", "consensus", "debate", "parallel_map", "pipeline", "router", "supervisor"]
