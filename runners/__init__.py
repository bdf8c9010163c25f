"""benchlab application: CLI, run orchestration, analysis, reports."""
