"""Training and judging a model (chapter 06): the two-stage loop and its configuration
(``loop``; ``python -m mattingkit.train``), checkpoints that resume exactly (``checkpoint``)
and the paper's evaluation metrics (``metrics``).

Progress reaches a caller through a callback; this package never imports plotting or widgets.
May import: :mod:`mattingkit.core`, :mod:`mattingkit.data`, :mod:`mattingkit.io`,
:mod:`mattingkit.runtime`.
"""
