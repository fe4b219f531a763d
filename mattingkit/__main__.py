"""``python -m mattingkit``: the same as the ``mattingkit`` command (see :mod:`mattingkit.apps.cli`)."""

from mattingkit.apps.cli import main

raise SystemExit(main())
