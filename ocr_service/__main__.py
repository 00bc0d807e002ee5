"""`python -m ocr_service` is the `catalyst-ocr` command."""

from ocr_service.cli import main

raise SystemExit(main())
