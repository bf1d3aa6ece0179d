"""The edit methods ids-nerf registers with nerfstudio, and the small source recipes for the CPU (and
which of their flags a CUDA run leaves out).

Plain data, no imports: the workflow, the demo, the tests and the benchmarks read the method names
here; ``pyproject.toml`` registers the same names (``tests/test_methods.py`` keeps the two equal), and
``ids_nerf/nerfstudio/method_configs.py`` builds each one.
"""

EDIT_METHODS = {
    "ids-edit": "nerfacto",
    "dds-edit": "nerfacto",
    "ids-edit-small": "nerfacto",
    "ids-edit-splat": "splatfacto",
    "dds-edit-splat": "splatfacto",
}
"""Each edit method and the nerfstudio method of the source runs it edits."""

METHOD_NAMES = tuple(EDIT_METHODS)

NO_EVALUATION = ["--steps-per-eval-batch", "0", "--steps-per-eval-image", "0", "--steps-per-eval-all-images", "0"]
"""No evaluation while a source trains: ``ids-nerf eval`` measures what matters, and it costs CPU minutes."""

CPU_NERFACTO = [
    # nerfacto with a smaller torch hash grid (2^15 entries a level) and no evaluation during training:
    # a source model that trains in minutes on a CPU.
    "--pipeline.model.implementation",
    "torch",
    "--pipeline.model.log2-hashmap-size",
    "15",
    "--pipeline.model.proposal-net-args-list.0.log2-hashmap-size",
    "15",
    "--pipeline.model.proposal-net-args-list.1.log2-hashmap-size",
    "15",
    *NO_EVALUATION,
]

CPU_ONLY_FLAGS = {
    "--pipeline.model.implementation",  # torch's hash grid: on CUDA, nerfstudio's default (tiny-cuda-nn)
    "--pipeline.model.log2-hashmap-size",  # the small grids, sized for CPU minutes
    "--pipeline.model.proposal-net-args-list.0.log2-hashmap-size",
    "--pipeline.model.proposal-net-args-list.1.log2-hashmap-size",
    "--pipeline.model.use-absgrad",  # the CPU stand-in rasterizer has no absgrad; gsplat on CUDA has
}
"""Flags of the CPU recipes, each followed by one value, that a CUDA run leaves to nerfstudio's defaults."""


def for_device(flags, cuda: bool) -> list:
    """``flags`` as they are off CUDA; on CUDA without the :data:`CPU_ONLY_FLAGS` and their values."""
    kept, skip = [], False
    for flag in flags:
        if cuda and flag in CPU_ONLY_FLAGS:
            skip = True
        elif skip:
            skip = False
        else:
            kept.append(flag)
    return kept


RANDOM_BACKGROUND = ["--pipeline.model.background-color", "random"]
"""With the dataset's alpha kept (``--alpha-color None``), a random background stops a source model from
hiding white haze in front of a white background, which otherwise ruins the test views (measured with
nerfacto: 10 vs 23 dB)."""

SMALL_SPLATFACTO = [
    # splatfacto for a small synthetic scene: full resolution from the first step (its default trains
    # at 1/4 for 3000 steps, 8x8 pixels here) and Gaussians started inside the scene. With a random
    # background, measured at 32x32: 28.7 dB after 1500 steps.
    "--pipeline.model.num-downscales",
    "0",
    "--pipeline.model.num-random",
    "2000",
    "--pipeline.model.random-scale",
    "2.5",
    *RANDOM_BACKGROUND,
    *NO_EVALUATION,
]

SPLAT_EDIT_COLOUR_LR = ["--optimizers.features-dc.optimizer.lr", "0.025"]
"""splatfacto's colour rate (0.0025) is sized for a 3000-step edit; edits of about a hundred steps need
ten times it."""
