"""The Dask back end: a checked Graph lowered to one Dask task graph and run on a cluster."""
