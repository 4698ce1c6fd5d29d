"""End-to-end smoke: the demo flow compiles clean and the broken one reports its three mistakes."""

from dagwright.demo import build_broken_flow, build_research_flow


def test_demo_flow_compiles_clean() -> None:
    flow = build_research_flow()
    graph = flow.compile(strict=True)
    assert flow.validate() == []
    assert [n.id for n in graph.input_nodes] == ["input:topic"]
    assert {n.id for n in graph.output_nodes} == {
        "output:decision",
        "output:rationale",
        "output:confidence",
        "output:sources",
    }


def test_broken_demo_flow_reports_each_mistake_once() -> None:
    errors = [d for d in build_broken_flow().validate() if d.severity == "error"]
    assert sorted((d.code, d.where) for d in errors) == [
        ("DW004", "researcher.finding"),
        ("DW007", "skeptic.topic"),
        ("DW009", "skeptic.findings"),
    ]
