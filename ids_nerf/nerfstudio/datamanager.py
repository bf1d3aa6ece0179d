"""The edit's datamanager: nerfstudio's full-image one; the pipeline chooses the views itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Type

import torch

from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager, FullImageDatamanagerConfig


@dataclass
class IDSEditDataManagerConfig(FullImageDatamanagerConfig):
    """Full training views and their cameras; images are read only for --pipeline.source-latents-from dataset."""

    _target: Type = field(default_factory=lambda: IDSEditDataManager)


class IDSEditDataManager(FullImageDatamanager):
    def __init__(self, config: IDSEditDataManagerConfig, *args, **kwargs) -> None:
        if config.cache_images == "cpu" and not torch.cuda.is_available():
            # nerfstudio pins CPU-cached images, which needs CUDA; "gpu" means the datamanager's
            # device, which is the CPU here.
            config.cache_images = "gpu"
        super().__init__(config, *args, **kwargs)

    def get_train_rays_per_batch(self) -> int:
        """Pixels of one full view: what an edit step renders (the parent counts cached images,
        which would load and pin every image just to report a speed)."""
        camera = self.train_dataset.cameras[0]
        return int(camera.width) * int(camera.height)
