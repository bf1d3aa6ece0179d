"""Tiny synthetic scenes for tests and demos, written with numpy and PIL alone."""

from ids_nerf.scenes.blender_scene import write_blender_scene
from ids_nerf.scenes.edit_scene import appearance_images, read_scene_info, write_edit_scene

__all__ = ["appearance_images", "read_scene_info", "write_blender_scene", "write_edit_scene"]
