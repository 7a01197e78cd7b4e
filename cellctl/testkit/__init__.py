"""Testing lines: the harness partners use (``harness``: run a line, a cell under test, FakeCell),
the pytest plugin, chaos runs, reproducibility fingerprints and scenario files (``scenarios``).

Nothing but the CLI and the pytest entry point imports it: production code never depends on tests."""
