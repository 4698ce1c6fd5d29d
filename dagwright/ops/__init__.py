"""Operations: checkpoints, result caches, monitoring and the optimizer, audit and access control,
tracing, and what LLM calls cost. Opt-in; nothing here runs until a flow or agent asks for it."""
