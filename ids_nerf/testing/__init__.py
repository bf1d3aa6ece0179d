"""What the tests and the benchmarks share: nerfstudio commands run offline on the CPU.

- :mod:`ids_nerf.testing.gsplat_cpu`: a dense CPU stand-in for gsplat's CUDA rasterizer;
- :mod:`ids_nerf.testing.ns_run`: ``python -m ids_nerf.testing.ns_run ns-train ...`` runs a console script
  with that stand-in where there is no CUDA;
- :mod:`ids_nerf.testing.ns_commands`: ns-train command lines for small CPU runs, and an offline AlexNet.

No other part of the package imports this one (``tests/test_layers.py`` checks it), so an edit on a GPU
always rasterizes with gsplat itself. gsplat keeps its torch reference inside its package for the same
reason: the tests and the benchmarks measure the same supported code.
"""
