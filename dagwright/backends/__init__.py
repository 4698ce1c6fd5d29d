"""Back ends: each takes a checked Graph (never a Flow) and runs it.

``builtin/`` is dagwright's own asyncio scheduler, ``kailash/`` lowers to the Kailash SDK,
``dask/`` runs on a Dask cluster. Each is imported on first use.
"""
