"""CLIP scores of an edit: text-image similarity and the directional similarity of instruct-nerf2nerf.

Models are passed in (:class:`ClipScorer`); loading lives in :func:`load_clip` alone. Images are float
``[3, H, W]`` or ``[B, 3, H, W]`` in [0, 1]; preprocessing is done here in torch, as CLIPProcessor does it
(shorter side resized to the model's input size with bicubic interpolation, centre crop, CLIP mean/std), so
no image-processor files are needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _features(output) -> torch.Tensor:
    """``get_*_features``: a tensor in transformers 4; in 5, an output with the projection in ``pooler_output``."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipScorer:
    """Scores images against texts with an already-loaded ``transformers.CLIPModel`` and its tokenizer."""

    def __init__(self, model, tokenizer, device: str | torch.device | None = None):
        from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_size = int(model.config.vision_config.image_size)
        self.max_length = int(model.config.text_config.max_position_embeddings)
        self._mean = torch.tensor(OPENAI_CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(OPENAI_CLIP_STD, device=self.device).view(1, 3, 1, 1)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` pixel values for the vision tower, S = ``config.vision_config.image_size``."""
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [3, H, W] or [B, 3, H, W], got {list(images.shape)}")
        images = images.to(self.device, torch.float32)
        height, width = images.shape[-2:]
        scale = self.image_size / min(height, width)
        size = (max(self.image_size, round(height * scale)), max(self.image_size, round(width * scale)))
        images = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True)
        top, left = (size[0] - self.image_size) // 2, (size[1] - self.image_size) // 2
        images = images[..., top : top + self.image_size, left : left + self.image_size].clamp(0, 1)
        return (images - self._mean) / self._std

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length CLIP image embeddings, ``[B, D]``."""
        pixel_values = self.preprocess(images).to(self.model.dtype)
        return F.normalize(_features(self.model.get_image_features(pixel_values=pixel_values)).float(), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: str | list[str]) -> torch.Tensor:
        """Unit-length CLIP text embeddings, ``[T, D]`` (texts past the model's context are truncated)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        return F.normalize(_features(self.model.get_text_features(**tokens)).float(), dim=-1)

    def text_image_similarity(self, images: torch.Tensor, text: str) -> float:
        """Mean cosine similarity, in [-1, 1], between each image's CLIP embedding and the text's."""
        return float((self.image_embeddings(images) @ self.text_embeddings(text)[0]).mean())

    def directional_similarity(
        self, src_images: torch.Tensor, edited_images: torch.Tensor, src_text: str, trg_text: str
    ) -> float:
        """CLIP directional similarity (StyleGAN-NADA; InstructPix2Pix and instruct-nerf2nerf report it).

        For each pair, the cosine, in [-1, 1], between ``E_img(edited) - E_img(src)`` and
        ``E_txt(trg_text) - E_txt(src_text)`` (embeddings normalised to unit length first), averaged over the
        pairs: how far the edit moved the images in the direction the captions move. A pair whose image
        embeddings are identical (no edit), or identical captions, contributes 0.0 rather than ``nan``.
        """
        src, edited = self.image_embeddings(src_images), self.image_embeddings(edited_images)
        if src.shape != edited.shape:
            raise ValueError(f"src_images and edited_images must pair up: {src.shape[0]} vs {edited.shape[0]} images")
        text = self.text_embeddings([src_text, trg_text])
        return _directional(src, edited, text[0], text[1])

    def edit_scores(self, src_images: torch.Tensor, edited_images: torch.Tensor, src_text: str, trg_text: str) -> dict:
        """The two numbers an edit is reported with: ``clip_text_image`` (edited images to ``trg_text``) and
        ``clip_directional`` (see :meth:`directional_similarity`)."""
        return {
            "clip_text_image": self.text_image_similarity(edited_images, trg_text),
            "clip_directional": self.directional_similarity(src_images, edited_images, src_text, trg_text),
        }


def _directional(src: torch.Tensor, edited: torch.Tensor, src_text: torch.Tensor, trg_text: torch.Tensor) -> float:
    image_delta = edited - src  # [B, D]
    text_delta = (trg_text - src_text).unsqueeze(0)  # [1, D]
    norms = image_delta.norm(dim=-1) * text_delta.norm(dim=-1)
    cosine = (image_delta * text_delta).sum(dim=-1) / norms.clamp(min=torch.finfo(norms.dtype).tiny)
    return float(torch.where(norms > 0, cosine, torch.zeros_like(cosine)).mean())


def load_clip(model_id_or_dir: str, device: str | torch.device = "cpu") -> tuple[ClipScorer | None, str]:
    """Load a CLIP model and tokenizer (hub id or local folder) from local files only; never downloads.

    Returns ``(scorer, notice)``; when the weights are neither a folder nor in the Hugging Face cache,
    ``(None, notice)`` with the reason, so callers can skip the CLIP metrics and say why.
    """
    from transformers import CLIPModel, CLIPTokenizer

    try:
        model = CLIPModel.from_pretrained(model_id_or_dir, local_files_only=True, dtype=torch.float32)
        tokenizer = CLIPTokenizer.from_pretrained(model_id_or_dir, local_files_only=True)
    except (OSError, ValueError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return None, f"CLIP metrics skipped: {model_id_or_dir!r} is not available locally ({first_line})"
    return ClipScorer(model, tokenizer, device=device), f"CLIP metrics with {model_id_or_dir}"
