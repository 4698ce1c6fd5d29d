"""A confidence score (``float``) wired into a retry budget typed ``int``."""

from dagwright import Flow, InputField, OutputField, Signature


class Grade(Signature):
    """Grade the answer."""

    answer: str = InputField()
    confidence: float = OutputField(description="0.0 to 1.0")


class Retry(Signature):
    """Decide whether to try again."""

    answer: str = InputField()
    max_retries: int = InputField(description="How many more attempts are allowed")
    verdict: str = OutputField()


flow = Flow("grading")
flow.input("answer", str)
flow.add_agent("grader", Grade)
flow.add_agent("retry", Retry)
flow.connect("grader.confidence", "retry.max_retries")  # expect: DW007 retry.max_retries
flow.output("verdict", "retry.verdict")

EXPECTED = {("DW007", "retry.max_retries")}
