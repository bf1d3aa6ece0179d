from importlib.metadata import entry_points

from nerfstudio.plugins.registry import discover_methods


def test_methods_are_discovered_through_entry_points():
    names = {ep.name for ep in entry_points(group="nerfstudio.method_configs")}
    assert {"ids-edit", "dds-edit", "ids-edit-small"} <= names
    methods, descriptions = discover_methods()
    assert methods["ids-edit"].pipeline.fpr_steps == 3
    assert methods["dds-edit"].pipeline.fpr_steps == 0
    assert methods["ids-edit-small"].pipeline.diffusion_size == 384
    assert "IDS" in descriptions["ids-edit"] and "DDS" in descriptions["dds-edit"]


def test_every_edit_field_is_documented():
    import ast
    import inspect

    from ids_nerf.nerfstudio import pipeline

    tree = ast.parse(inspect.getsource(pipeline.IDSEditPipelineConfig))
    body = tree.body[0].body
    undocumented = [
        node.target.id
        for node, after in zip(body, body[1:] + [None])
        if isinstance(node, ast.AnnAssign)
        and node.target.id != "_target"
        and not (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant))
    ]
    assert undocumented == []
