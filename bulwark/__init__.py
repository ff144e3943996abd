"""Bulwark: the `bulwark` command that fronts every part (rules, agent, hub)."""
