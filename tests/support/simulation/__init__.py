"""The planner's simulated world, shared by tests/planner, tests/property and bench/planner.py:
the simulator (a world with faults that applies the same steps the executor does), the
named safety invariants, the hypothesis strategies and the session counts."""
