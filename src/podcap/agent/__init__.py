"""The node agent: workload discovery, capture lifecycle, budgets, recovery."""
