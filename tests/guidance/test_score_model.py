from ids_nerf.guidance import ScoreModel, load_guidance


def test_both_score_models_have_the_declared_interface(tiny_guidance, tmp_path):
    from ids_nerf.scenes.edit_scene import write_edit_scene

    exact = load_guidance(f"exact:{write_edit_scene(tmp_path / 'scene', size=16, views=2)}")
    for model in (tiny_guidance, exact):
        assert isinstance(model, ScoreModel), type(model).__name__
        missing = [name for name in ScoreModel.__annotations__ if not hasattr(model, name)]
        assert not missing, (type(model).__name__, missing)
