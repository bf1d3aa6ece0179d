"""The nerfstudio glue: the ids-edit pipeline, trainer and method specifications.

Importing it (nerfstudio does, through the method entry points or an edited run's config.yml) lets
torch.load read nerfstudio 1.1.5 checkpoints under torch >= 2.6; see ``checkpoints.py``.
"""

from ids_nerf.nerfstudio.checkpoints import allow_nerfstudio_checkpoints

allow_nerfstudio_checkpoints()
