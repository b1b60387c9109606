"""kscout: agentic kernel search with persistent memory (CLI and run wiring)."""

__version__ = "0.1.0"
