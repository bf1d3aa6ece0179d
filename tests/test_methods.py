"""The edit methods are named in one place (ids_nerf/methods.py); pyproject.toml registers the same ones."""

from importlib.metadata import entry_points

from ids_nerf.methods import EDIT_METHODS, METHOD_NAMES


def test_the_installed_package_registers_exactly_the_edit_methods():
    registered = [e.name for e in entry_points(group="nerfstudio.method_configs") if e.value.startswith("ids_nerf.")]
    assert sorted(registered) == sorted(METHOD_NAMES)


def test_each_method_config_carries_its_name_and_edits_its_source_kind():
    from ids_nerf.nerfstudio import method_configs

    for name, source in EDIT_METHODS.items():
        spec = getattr(method_configs, name.replace("-", "_"))
        assert spec.config.method_name == name
        assert spec.config.pipeline.source_kind == source
