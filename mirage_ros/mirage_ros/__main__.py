"""`python -m mirage_ros ...` is the `mirage` command."""

from mirage_ros.cli import main

raise SystemExit(main())
