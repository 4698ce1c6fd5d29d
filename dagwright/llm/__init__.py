"""The LLM side: calls through the OpenAI client, structured output, prompts, memory, the offline
model, and how an agent turns inputs into outputs (strategy, call, parse, repair)."""
