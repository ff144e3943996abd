"""End-to-end tests: real hub and agent processes, real packets (see test_fleet.py)."""
