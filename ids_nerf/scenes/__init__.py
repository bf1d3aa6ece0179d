"""Tiny synthetic scenes for tests and demos, written with numpy and PIL alone."""

from ids_nerf.scenes.blender_scene import write_blender_scene

__all__ = ["write_blender_scene"]
