"""A learned score model that trains in seconds, for the tests that need one."""


def tiny_args(out, steps=30, *extra):
    """A model that trains in seconds on one CPU thread (0.37 M parameters, batch 8)."""
    return [
        "train-score-model",
        str(out),
        "--scenes", "8",
        "--views-per-scene", "2",
        "--size", "16",
        "--steps", str(steps),
        "--batch-size", "8",
        "--lr", "1e-3",
        "--channels", "32", "32",
        "--layers-per-block", "1",
        "--caption-dim", "32",
        "--log-every", "10",
        "--device", "cpu",
        *extra,
    ]  # fmt: skip
