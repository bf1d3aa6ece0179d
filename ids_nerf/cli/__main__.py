from ids_nerf.cli.main import entrypoint

entrypoint()
