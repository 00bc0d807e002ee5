"""Catalyst OCR's Python client, installable on its own (`pip install 'catalyst-ocr[client]'`)."""
