from tests.import_check import assert_imports_none_of


def test_core_imports_neither_nerfstudio_nor_diffusers():
    assert_imports_none_of("ids_nerf.core", {"nerfstudio", "diffusers", "transformers"})
