"""``python -m mattingkit``: the same as the ``mattingkit`` command (see :mod:`mattingkit.cli`)."""

from mattingkit.cli import main

raise SystemExit(main())
