"""IDS against DDS with the exact-score model: ``ids-nerf study`` (writes docs/results.md)."""
