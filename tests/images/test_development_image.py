"""The development image (compose's hot-reload override) starts the service under watchfiles
as uid 1000 and carries the dev tools the checkout's tests need."""

from __future__ import annotations

import pytest
from images_support import DEVELOPMENT_IMAGE, docker

pytestmark = pytest.mark.timeout(120)


def test_the_development_image_has_the_service_and_its_dev_tools() -> None:
    probe = "import catalyst_operator, ocr_service, pytest, tesserocr; print(tesserocr.tesseract_version().split()[1])"
    result = docker("run", "--rm", "--entrypoint", "python", DEVELOPMENT_IMAGE, "-c", probe)
    assert result.stdout.strip().startswith("5."), result.stdout + result.stderr
    entrypoint = docker("image", "inspect", "-f", "{{json .Config.Entrypoint}} {{.Config.User}}", DEVELOPMENT_IMAGE)
    assert (
        entrypoint.stdout.strip()
        == '["watchfiles","--filter","python","catalyst-ocr serve","/src/ocr_service"] 1000:1000'
    )
