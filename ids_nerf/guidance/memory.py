"""How much memory the diffusion half of an edit step needs, counted before any weight is loaded.

The UNet and the VAE are built from their configs as fake tensors (torch's ``FakeTensorMode``: shapes
and devices, no data), and one edit step's diffusion half (VAE encode with grad, the IDS step, the
distillation loss's gradient back to the image, as ``IDSEditPipeline.edit_step`` runs them) is run on
them under :class:`LiveBytes`, which adds up the bytes of every tensor alive at once. Nothing is
computed, so a 512x512 step of SD 1.5 is counted in seconds on any machine. Fake CPU tensors rather
than meta ones: attention then takes the fused kernel (no [tokens x tokens] matrix), as it does on the
CPU and on CUDA; on meta it falls back to the plain one, which at 512x512 needs several times more.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ids_nerf.core import distillation_loss, ids_step
from ids_nerf.images import fit_short_side

GIB = 1024**3
BYTES_PER_PARAMETER = {"fp32": 4, "fp16": 2, "bf16": 2}


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of the tensor storages that ops run inside it create, while they are alive, and
    the peak of that sum (``peak``). Works on any device, meta included. Storages made before the mode
    (weights, inputs) are not counted; views and in-place results share their input's storage and add
    nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._holders: Dict[int, int] = {}  # storage key -> tensors alive that use it
        self._sizes: Dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {_key(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                self._track(tensor, new=_key(tensor) not in inputs)
        return out

    def _track(self, tensor: torch.Tensor, new: bool) -> None:
        key = _key(tensor)
        if key not in self._holders:
            if not new:
                return  # a view of, or an in-place write into, a storage made outside the mode
            self._holders[key] = 0
            self._sizes[key] = tensor.untyped_storage().nbytes()
            self.current += self._sizes[key]
            self.peak = max(self.peak, self.current)
        self._holders[key] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        self._holders[key] -= 1
        if self._holders[key] == 0:
            del self._holders[key]
            self.current -= self._sizes.pop(key)


def _key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata


@dataclass(frozen=True)
class DiffusionMemory:
    """Bytes the diffusion model needs on its device."""

    weights: int
    """UNet + VAE weights at the precision (they stay for the whole edit)."""
    text_encoder: int
    """Text encoder weights: loaded with the others, released once the prompts are embedded."""
    step_activations: int
    """Peak of the tensors one edit step's diffusion half keeps alive at once, above the weights."""
    latent_bytes: int
    """One stored source latent (an edit keeps one per training view)."""
    step_flops: int = 0
    """FLOPs of that step (torch's ``FlopCounterMode`` on the fake tensors; it has no formula for the CPU's
    fused attention kernel, so attention is left out): the memory plan projects a CPU step's time from it."""
    image_size: Optional[Tuple[int, int]] = None
    """(H, W) the view is resized to for the VAE; an edit renders views larger than it at this size. None:
    not known from configs (the exact-score model)."""

    @property
    def peak(self) -> int:
        return self.weights + max(self.text_encoder, self.step_activations)


def _configs(model: str) -> Tuple[dict, dict, dict]:
    """The unet, vae and text_encoder configs of a local diffusers folder or a cached hub id (no weights)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    folder = Path(model).expanduser()
    common = {"local_files_only": True}
    unet = UNet2DConditionModel.load_config(model, subfolder="unet", **common)
    vae = AutoencoderKL.load_config(model, subfolder="vae", **common)
    if folder.is_dir():
        text = json.loads((folder / "text_encoder" / "config.json").read_text())
    else:
        from transformers import CLIPTextConfig

        text = CLIPTextConfig.from_pretrained(model, subfolder="text_encoder", **common).to_dict()
    return unet, vae, text


def _text_encoder_parameters(config: dict) -> int:
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        model = CLIPTextModel(CLIPTextConfig(**config))
    return sum(p.numel() for p in model.parameters())


def fake_guidance(unet_config: dict, vae_config: dict, dtype: torch.dtype, mode):
    """A :class:`StableDiffusionGuidance` whose UNet and VAE are built from their configs, with prompt
    embeddings, all fake tensors of ``mode`` (a ``FakeTensorMode``): a step through it computes and
    allocates nothing."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    from ids_nerf.guidance.stable_diffusion import StableDiffusionGuidance

    with torch.device("meta"):  # shapes only; then fake storage on the CPU
        unet = UNet2DConditionModel.from_config(unet_config).to(dtype)
        vae = AutoencoderKL.from_config(vae_config).to(dtype)
    with mode:
        unet, vae = unet.to_empty(device="cpu"), vae.to_empty(device="cpu")
        guidance = StableDiffusionGuidance(unet, vae, torch.nn.Identity(), None, DDPMScheduler())
        guidance.text_encoder = None
        width = unet_config["cross_attention_dim"]
        width = width[0] if isinstance(width, (list, tuple)) else width
        for prompt in ("", "source", "target"):  # "" is CFG's unconditional half
            guidance._prompt_cache[prompt] = torch.empty(1, 77, width, dtype=dtype)
    return guidance


def diffusion_step(guidance, image: torch.Tensor, z_src: torch.Tensor, fpr_steps: int, fpr_scale: float, jacobian: str):
    """One edit step's diffusion half on ``image`` ``[1, 3, H, W]``: the image's gradient (as
    ``IDSEditPipeline.edit_step``)."""
    image = image.detach().requires_grad_(True)
    with torch.enable_grad():
        z_trg = guidance.encode(image)
        t = torch.full((1,), 500, dtype=torch.long, device=z_trg.device)
        noise = torch.empty_like(z_trg)
        cond_src, cond_trg = guidance.embed_prompt("source"), guidance.embed_prompt("target")
        args = (z_src, z_trg, cond_src, cond_trg, t, noise, guidance.alphas_cumprod, fpr_steps, fpr_scale, jacobian)
        result = ids_step(guidance.score_fn, *args)
        scale = 2000.0 / (z_trg.shape[-2] * z_trg.shape[-1])
        (grad,) = torch.autograd.grad(distillation_loss(z_trg, result.direction, scale), image)
    return grad


def estimate_diffusion_memory(
    model: str,
    precision: str,
    view: Tuple[int, int],
    diffusion_size: Optional[int],
    fpr_steps: int,
    fpr_jacobian: str = "full",
) -> DiffusionMemory:
    """Bytes the diffusion model ``model`` (a diffusers folder or a cached hub id) needs at ``precision``
    (fp32, fp16, bf16) for edit steps on views of ``view`` (H, W) pixels, resized as the edit resizes
    them (short side ``diffusion_size``, default the model's native size), counted from its configs alone.
    The exact-score model (``exact:SCENE``) has no weights and image-sized steps: counted as nothing; so is the
    learned one (``learned:FOLDER``: a few MB of weights, steps on 32-pixel images)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    if model.startswith(("exact:", "learned:")):
        return DiffusionMemory(0, 0, 0, 0)
    unet_config, vae_config, text_config = _configs(model)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    mode = FakeTensorMode(allow_non_fake_inputs=True)  # the meta-built modules become fake in it
    guidance = fake_guidance(unet_config, vae_config, dtype, mode)
    with mode:
        parameters = sum(p.numel() for m in (guidance.unet, guidance.vae) for p in m.parameters())
        height, width = fit_short_side(*view, diffusion_size or guidance.native_size, guidance.size_multiple)
        factor = guidance.vae_scale_factor
        image = torch.empty(1, 3, height, width, dtype=dtype)
        z_src = torch.empty(1, unet_config["in_channels"], height // factor, width // factor, dtype=dtype)
        with LiveBytes() as live:
            diffusion_step(guidance, image, z_src, fpr_steps, 1.0, fpr_jacobian)
        with FlopCounterMode(display=False) as flops:  # a pass of its own: the counter keeps 8 KiB more alive
            diffusion_step(guidance, image, z_src, fpr_steps, 1.0, fpr_jacobian)
    bytes_per = BYTES_PER_PARAMETER[precision]
    text = _text_encoder_parameters(text_config) * bytes_per
    latent = z_src.numel() * z_src.element_size()
    step_flops = int(flops.get_total_flops())
    return DiffusionMemory(parameters * bytes_per, text, live.peak, latent, step_flops, (height, width))
