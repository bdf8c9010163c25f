"""The metrics store: models, the `Store`, exact queries, the spool and the writer child process."""
