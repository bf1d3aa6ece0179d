"""2D image editing with IDS, DDS or CDS."""

from ids_nerf.image_editing.editor import EditImageConfig, edit_image

__all__ = ["EditImageConfig", "edit_image"]
