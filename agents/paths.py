"""Where the agents' data lives (importable without dspy)."""

from pathlib import Path

SKILLS_DIR = Path(__file__).resolve().parent.parent / "skills"
OPTIMIZED_DIR = SKILLS_DIR / "optimized"
