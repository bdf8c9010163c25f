"""Rendering of results: console table, JSON summary (and later HTML, Markdown, JUnit). Renders only."""
