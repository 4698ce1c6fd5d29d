"""A 2-D point (``tuple[float, float]``) into a function that takes a 3-D one."""

from dagwright import Flow


def distance(point: tuple[float, float, float]) -> float:
    x, y, z = point
    return float((x * x + y * y + z * z) ** 0.5)


flow = Flow("geometry")
flow.input("address", str)
flow.add_agent("geocoder", "address: str -> point: tuple[float, float]")
flow.add_function("distance", distance)
flow.connect("geocoder.point", "distance.point")  # expect: DW007 distance.point
flow.output("distance", "distance.output")

EXPECTED = {("DW007", "distance.point")}
