"""Emulator fidelity checks: moto's own test suites run against the emulator (run_moto_suite.py)."""
