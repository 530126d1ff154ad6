"""What every TumorBench layer shares, below all of them: user-facing errors, atomic writes and
the cohort definitions (size bins, age groups). Imports nothing from benchmark/, models/,
reports/ or synthesis/ (enforced by the import-linter contracts in pyproject.toml)."""
