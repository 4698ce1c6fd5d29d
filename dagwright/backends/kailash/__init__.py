"""The Kailash back end: a checked Graph lowered to a Kailash ``WorkflowBuilder`` and run on its runtimes.

Importing this package does not import ``kailash``; :mod:`.nodes` does.
"""
