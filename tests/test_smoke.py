"""End-to-end smoke: the demo flow compiles clean and the broken one reports its three mistakes."""

from dagwright.cli.demo import build_broken_flow, build_research_flow


def test_demo_flow_compiles_clean() -> None:
    flow = build_research_flow()
    graph = flow.compile(strict=True)
    assert [d for d in flow.validate() if d.severity != "info"] == []
    assert [n.id for n in graph.input_nodes] == ["input:topic"]
    assert {n.id for n in graph.output_nodes} == {
        "output:decision",
        "output:confidence",
        "output:agreement",
        "output:votes",
        "output:consensus_reached",
        "output:reason",
    }


def test_demo_flow_runs_on_the_offline_model() -> None:
    result = build_research_flow().run(topic="Adopt a four-day week?")
    assert result.success
    assert result.usage.calls == 1 + (2 * 2 + 1) + 3  # researcher, debate, three reviewers
    assert result.outputs["decision"] in ("endorse", "object")


def test_broken_demo_flow_reports_each_mistake_once() -> None:
    errors = [d for d in build_broken_flow().validate() if d.severity == "error"]
    assert sorted((d.code, d.where) for d in errors) == [
        ("DW004", "researcher.finding"),
        ("DW007", "skeptic.topic"),
        ("DW009", "skeptic.findings"),
    ]
