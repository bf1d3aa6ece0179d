"""The edit's datamanager: nerfstudio's VanillaDataManager; the pipeline chooses the views itself.

The edit step only needs the training cameras (and the images for
``--pipeline.source-latents-from dataset``), but ns-export's point-cloud and Poisson exporters sample
rays through this datamanager's pixel sampler, so the vanilla one is kept rather than the full-image one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Type

from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from PIL import Image

from ids_nerf.errors import UserError


@dataclass
class IDSEditDataManagerConfig(VanillaDataManagerConfig):
    """Training views and cameras; ``train_num_rays_per_batch`` only matters to ns-export."""

    _target: Type = field(default_factory=lambda: IDSEditDataManager)


class IDSEditDataManager(VanillaDataManager):
    def create_train_dataset(self) -> InputDataset:
        """nerfstudio's dataset, its masks checked first: the loader would stop at a mis-sized one with an
        assertion, while the edit refuses it in one line (before the diffusion model loads)."""
        dataset = super().create_train_dataset()
        check_mask_sizes(dataset)
        return dataset

    def get_train_rays_per_batch(self) -> int:
        """Pixels of one full view: what an edit step renders (for the rays-per-second readout)."""
        camera = self.train_dataset.cameras[0]
        return int(camera.width) * int(camera.height)


def check_mask_sizes(dataset: InputDataset) -> None:
    """Each view's mask (nerfstudio's ``mask_path``) must have its image's size; file headers only are read."""
    masks = dataset._dataparser_outputs.mask_filenames or []
    for image_file, mask_file in zip(dataset.image_filenames, masks):
        with Image.open(image_file) as image, Image.open(mask_file) as mask:
            if image.size != mask.size:
                raise UserError(
                    f"mask {mask_file} is {mask.size[0]}x{mask.size[1]} pixels, its view {Path(image_file).name} "
                    f"{image.size[0]}x{image.size[1]}; give each view a mask of its image's size"
                )
