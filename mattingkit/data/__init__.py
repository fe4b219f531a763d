"""Training data: real datasets downloaded and composited (``datasets``), the paper's
augmentations (``augment``), and the synthetic samples the kit draws offline (``synthetic``,
drawn by ``drawing``) for the chapters, the tests and the shipped model.

May import: :mod:`mattingkit.core`, :mod:`mattingkit.weights` (for downloads),
:mod:`mattingkit.io`, :mod:`mattingkit.runtime`.
"""
