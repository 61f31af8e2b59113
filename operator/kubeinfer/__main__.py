"""``python -m kubeinfer`` runs the ``kubeinfer`` command."""

from kubeinfer.cli import main

raise SystemExit(main())
