"""Pure analysis over plain data: summaries, comparisons, verdicts. No DB, no printing, no exit codes."""
