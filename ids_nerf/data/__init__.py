"""Dataset helpers: convert LLFF scenes (``poses_bounds.npy``) to nerfstudio's ``transforms.json``."""

from ids_nerf.data.llff import llff_to_transforms, read_poses_bounds, write_transforms

__all__ = ["llff_to_transforms", "read_poses_bounds", "write_transforms"]
