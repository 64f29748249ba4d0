"""Benchmarks, each run as a script (`python benchmarks/NAME.py`): a package only so that
their module names (benchmarks.fleet) do not clash with the tests' (tests/fleet)."""
