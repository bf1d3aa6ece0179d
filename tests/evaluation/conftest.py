"""A tiny random CLIP model saved like a real one, for the CLIP metrics (no network)."""

import pytest


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from ids_nerf.guidance.tiny import write_byte_tokenizer

    folder = tmp_path_factory.mktemp("models") / "tiny-clip"
    write_byte_tokenizer(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    common = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **common,
        ),
        vision_config=dict(image_size=32, patch_size=8, **common),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir):
    from ids_nerf.evaluation import load_clip

    scorer, notice = load_clip(str(tiny_clip_dir))
    assert scorer is not None, notice
    return scorer
