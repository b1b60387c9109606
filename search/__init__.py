"""kscout search: the strategy tree, the planner and its baselines, budgets, and the Ray wiring."""
