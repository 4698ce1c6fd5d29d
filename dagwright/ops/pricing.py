"""What LLM calls cost: USD per million tokens for known models.

A dated model name (``gpt-4o-mini-2024-07-18``) is priced as its family (the
longest known prefix). An unknown model costs 0.0 and is flagged
(``cost_known=False``) rather than guessed.
"""

from __future__ import annotations

__all__ = ["PRICES", "cost_of"]

# (input, output) USD per 1M tokens, from the providers' public price lists.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1-mini": (1.10, 4.40),
    "o1": (15.00, 60.00),
    "o3-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    "dagwright-offline": (0.0, 0.0),
}
_BY_LENGTH = sorted(PRICES, key=len, reverse=True)


def cost_of(model: str, prompt_tokens: int, completion_tokens: int) -> tuple[float, bool]:
    """``(usd, known)`` for one call; ``known`` is False for models not in :data:`PRICES`."""
    name = model.lower()
    for family in _BY_LENGTH:
        if name == family or name.startswith((family + "-", family + ":")):
            price_in, price_out = PRICES[family]
            return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000, True
    return 0.0, False
