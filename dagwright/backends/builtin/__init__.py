"""The built-in back end: a checked Graph run on asyncio."""
