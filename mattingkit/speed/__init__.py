"""Making the model fast, and measuring how fast (chapters 04 and 07).

``windows``: the refiner's window path (per-patch windows, folded and composed kernels),
equal to the teaching refiner in :mod:`mattingkit.core.refiner` and swapped in by
:func:`mattingkit.speed.windows.accelerate`; ``folding``: BatchNorm folded into the
convolution before it (one rule, used by the refiner and the inference engine);
``profile``: GMacs like the paper, fps measured like the paper, what the CPU can do.

May import: torch, torchvision, :mod:`mattingkit.core`, :mod:`mattingkit.runtime`.
"""
