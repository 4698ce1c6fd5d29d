"""A style-guide function whose only input has a default and is never connected.

Nothing leads to it: no flow input and no source node feed it, so it would run
on its default alone while the editor depends on it.
"""

from dagwright import Flow


def style_guide(house: str = "plain") -> str:
    return f"Write in the {house} house style."


flow = Flow("editing")
flow.input("draft", str)
flow.add_function("style", style_guide)  # expect: DW011 style
flow.add_agent("editor", "draft: str, guide: str -> edited: str")
flow.connect("style.output", "editor.guide")
flow.output("edited", "editor.edited")

EXPECTED = {("DW011", "style")}
