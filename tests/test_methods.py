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


def test_a_cuda_run_gets_the_cpu_recipes_without_their_cpu_only_flags():
    from ids_nerf.methods import CPU_NERFACTO, CPU_ONLY_FLAGS, NO_EVALUATION, for_device

    assert for_device(CPU_NERFACTO, cuda=False) == CPU_NERFACTO
    assert for_device([*CPU_NERFACTO, "--pipeline.model.use-absgrad", "False"], cuda=True) == NO_EVALUATION
    assert CPU_ONLY_FLAGS & set(CPU_NERFACTO)  # the recipe does carry some, so the line above is a real test
