"""`python -m postel` runs the admin CLI."""

from postel.cli import main

raise SystemExit(main())
