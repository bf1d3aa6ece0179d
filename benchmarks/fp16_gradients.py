"""How small the gradients inside a real ids-edit step are, against fp16's range (issue 24, item 4).

With tiny-cuda-nn (nerfacto's hash grid and MLPs on a GPU) the field's backward runs in fp16: every
gradient that reaches a tcnn module's output is cast to half precision. This runs one edit step on the CPU
with the torch implementation of the same modules, at the size users edit, and counts which share of those
gradients would fall below fp16's smallest normal (6.1e-5) and subnormal (6.0e-8) numbers, and the power of
two a static loss scale would need to lift the 0.1 % quantile above the smallest normal.

    python -m benchmarks.fp16_gradients --source RUN --size 512      # RUN: a nerfacto run folder (config.yml)

Without --source a small source is trained first. The score model is SD 1.5's architecture with random
weights (benchmarks.models): its predictions are not Stable Diffusion's, so the direction's size, and with
it every gradient, may differ from a real edit's by a constant factor; the spread over modules does not.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import tempfile
from pathlib import Path

import torch

FP16_NORMAL = float(torch.finfo(torch.float16).tiny)  # 6.10e-05
FP16_SUBNORMAL = 2.0**-24  # 5.96e-08, the smallest positive half


def gradient_shares(values: torch.Tensor) -> dict:
    """Of the non-zero magnitudes ``values``: the shares below fp16's normal and subnormal floors, the
    0.1 % and 50 % quantiles, and the power of two that lifts the 0.1 % quantile above the normal floor."""
    values = values[values > 0].double()
    if not len(values):
        return {"count": 0}
    sample = values[torch.randperm(len(values))[:1_000_000]]  # quantile() has a size limit
    low, median = torch.quantile(sample, torch.tensor([0.001, 0.5], dtype=torch.float64)).tolist()
    return {
        "count": len(values),
        "below_fp16_normal": float((values < FP16_NORMAL).double().mean()),
        "below_fp16_subnormal": float((values < FP16_SUBNORMAL).double().mean()),
        "quantile_0.1%": low,
        "median": median,
        "largest": float(values.max()),
        "scale_log2_needed": max(0, math.ceil(math.log2(FP16_NORMAL / low))),
    }


def fp16_modules(model: torch.nn.Module) -> dict:
    """The modules tiny-cuda-nn would run in fp16: nerfacto's hash encodings and MLPs (the field's and the
    proposal networks'), by name; the outermost of nested ones (tcnn fuses an encoding with its MLP)."""
    from nerfstudio.field_components.encodings import HashEncoding
    from nerfstudio.field_components.mlp import MLP, MLPWithHashEncoding

    kinds = (HashEncoding, MLP, MLPWithHashEncoding)
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, kinds) and not any(name.startswith(f"{outer}.") for outer in found):
            found[name] = module
    return found


def edit_trainer(source: Path, size: int, model_dir: Path, out: Path):
    """ids-edit set up in-process on ``source``'s data with the views scaled to ``size`` pixels (the
    datamanager's camera_res_scale_factor), the torch hash grid, on the CPU."""
    import yaml
    from nerfstudio.plugins.registry import discover_methods
    from PIL import Image

    run = yaml.load((source / "config.yml").read_text(), Loader=yaml.Loader)
    dataparser = run.pipeline.datamanager.dataparser
    data = Path(run.pipeline.datamanager.data or dataparser.data)
    first = next(iter(sorted((data / "train").glob("*.png"))))
    config = copy.deepcopy(discover_methods()[0]["ids-edit"])
    config.machine.device_type = "cpu"
    config.vis = "tensorboard"
    config.output_dir = out
    config.load_dir = source / "nerfstudio_models"
    dataparser.data = data
    config.pipeline.datamanager.dataparser = dataparser
    config.pipeline.datamanager.camera_res_scale_factor = size / Image.open(first).size[0]
    config.pipeline.source_prompt, config.pipeline.target_prompt = "a red ball", "a blue ball"
    config.pipeline.diffusion_model = str(model_dir)
    config.pipeline.render_chunk_rays = 8192
    config.set_timestamp()
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    return trainer


def main() -> None:
    from benchmarks.models import sd15_random
    from ids_nerf.guidance import make_tiny_sd
    from ids_nerf.scenes import write_edit_scene
    from ids_nerf.testing.ns_commands import make_offline_alexnet, offline_env, train_source_nerfacto

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="a nerfacto run folder (config.yml, nerfstudio_models/)")
    parser.add_argument("--source-steps", type=int, default=200, help="steps of the source trained without --source")
    parser.add_argument("--size", type=int, default=512, help="view side in pixels (the diffusion size: 512)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fp16_gradients.json"))
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="fp16-grads-"))
    torch_home = root / "torch-home"
    make_offline_alexnet(torch_home)
    os.environ["TORCH_HOME"] = str(torch_home)  # nerfacto's LPIPS builds with the offline AlexNet
    source = args.source
    if source is None:
        scene = write_edit_scene(root / "scene", size=32, views=8)
        source = train_source_nerfacto(scene, root / "out", offline_env(torch_home), args.source_steps)
    trainer = edit_trainer(source.resolve(), args.size, make_tiny_sd(root / "tiny-sd"), root / "edit")
    pipeline = trainer.pipeline
    # the tiny model set the edit up; SD 1.5's architecture scores it (512 pixels: 64x64 latents)
    pipeline.guidance = sd15_random("cpu", "fp32")
    for prompt in (pipeline.config.source_prompt, pipeline.config.target_prompt, ""):
        pipeline.guidance.embed_prompt(prompt)
    # the one view the step scores gets its source latent at 512 (a render of every view would take minutes)
    step = 1
    index = pipeline.view_for_step(step)
    with torch.no_grad():
        latent = pipeline.encode(pipeline.source_image(index))
    pipeline.source_latents = latent.new_zeros((len(pipeline.source_latents), *latent.shape[1:]))
    pipeline.source_latents[index] = latent[0]

    grads: dict = {name: [] for name in fp16_modules(pipeline.model)}

    def keep(name):
        def hook(module, inputs, output):
            if output.requires_grad:
                output.register_hook(lambda g: grads[name].append(g.detach().abs().flatten().float()))

        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in fp16_modules(pipeline.model).items()]
    trainer.optimizers.zero_grad_all()
    pixel = {}
    render = pipeline.render_for_edit
    pipeline.render_for_edit = lambda index, seed: _keeping_pixel_grad(render(index, seed), pixel)
    _, metrics, applied = pipeline.edit_step(step)
    for handle in handles:
        handle.remove()
    rows = {name: gradient_shares(torch.cat(values)) for name, values in grads.items() if values}
    rows["d loss / d pixel"] = gradient_shares(pixel["grad"].abs().flatten())
    print(f"One ids-edit step, {args.size}x{args.size} view, t = {metrics['ids/t']:.0f}, applied: {applied}")
    print(
        f"{'gradient at the output of':34} {'count':>10} {'< fp16 normal':>14} {'< subnormal':>12} "
        f"{'0.1 % quantile':>15} {'median':>10} {'scale needed':>13}"
    )
    for name, row in rows.items():
        if row["count"]:
            print(
                f"{name:34} {row['count']:10d} {100 * row['below_fp16_normal']:13.2f}% "
                f"{100 * row['below_fp16_subnormal']:11.2f}% {row['quantile_0.1%']:15.3e} {row['median']:10.3e} "
                f"{'2^' + str(row['scale_log2_needed']):>13}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"size": args.size, "t": metrics["ids/t"], "rows": rows}, indent=1))


def _keeping_pixel_grad(rendered, store):
    image, backprop = rendered

    def keep(grad_image):
        store["grad"] = grad_image.detach()
        return backprop(grad_image)

    return image, keep


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
