import json

from diffusers import StableDiffusionPipeline

from ids_nerf.guidance.tiny import byte_level_table


def test_byte_table_is_a_bijection_onto_visible_characters():
    table = byte_level_table()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert not any(ch.isspace() for ch in table.values())


def test_tiny_folder_is_a_complete_diffusers_pipeline(tiny_sd_dir):
    index = json.loads((tiny_sd_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_dir, local_files_only=True, safety_checker=None)
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 32
    ids = pipe.tokenizer("a red ball").input_ids
    assert ids[0] == pipe.tokenizer.bos_token_id and ids[-1] == pipe.tokenizer.eos_token_id
    assert pipe.tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == "aredball"
    size = sum(p.stat().st_size for p in tiny_sd_dir.rglob("*") if p.is_file())
    assert size < 10 * 2**20
