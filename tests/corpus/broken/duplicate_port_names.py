"""A hand-made node that declares the output ``summary`` twice."""

from dagwright import Flow, Node, Port, parse_type

STR = parse_type("str")

flow = Flow("merge")
flow.input("draft", str)
flow.add_node(  # expect: DW014 merger.summary
    Node(
        "merger",
        "function",
        inputs=(Port("draft", STR),),
        outputs=(Port("summary", STR), Port("summary", STR)),
    )
)
flow.output("summary", "merger.summary")

EXPECTED = {("DW014", "merger.summary")}
