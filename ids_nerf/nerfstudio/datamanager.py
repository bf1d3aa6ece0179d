"""The edit's datamanager: nerfstudio's VanillaDataManager; the pipeline chooses the views itself.

The edit step only needs the training cameras (and the images for
``--pipeline.source-latents-from dataset``), but ns-export's point-cloud and Poisson exporters sample
rays through this datamanager's pixel sampler, so the vanilla one is kept rather than the full-image one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Type

from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig


@dataclass
class IDSEditDataManagerConfig(VanillaDataManagerConfig):
    """Training views and cameras; ``train_num_rays_per_batch`` only matters to ns-export."""

    _target: Type = field(default_factory=lambda: IDSEditDataManager)


class IDSEditDataManager(VanillaDataManager):
    def get_train_rays_per_batch(self) -> int:
        """Pixels of one full view: what an edit step renders (for the rays-per-second readout)."""
        camera = self.train_dataset.cameras[0]
        return int(camera.width) * int(camera.height)
