"""The teaching core: what chapters 01-05 build, and nothing else.

The matting equation and its composites (``matting``), the encoders (``backbones``), the
decoder, the two models (``model``), the refiner's straightforward path (``refiner``), the
training losses (``losses``) and the paper's own figures (``paper``).

May import: torch, torchvision and ``mattingkit.core`` itself. No OpenCV, PyAV, numpy I/O,
widgets or plotting: ``tests/test_layout.py`` checks it, so a student can read this folder
in an afternoon without meeting application plumbing.
"""
