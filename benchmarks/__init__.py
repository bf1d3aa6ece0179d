"""Benchmarks: ratios measured side by side in one run (``python -m benchmarks.<name>``); not timed tests."""
