"""The built images, run as a cluster would run them. Opt-in: `scripts/test-images.sh` builds the
images and runs these with CATALYST_TEST_IMAGES=1; the ordinary suite skips them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from images_support import OPERATOR_IMAGE, SERVICE_IMAGE, docker

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CATALYST_TEST_IMAGES") == "1":
        return
    skip = pytest.mark.skip(reason="image tests run from scripts/test-images.sh (CATALYST_TEST_IMAGES=1)")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def images_exist() -> None:
    for image in (SERVICE_IMAGE, OPERATOR_IMAGE):
        if docker("image", "inspect", image, check=False).returncode != 0:
            pytest.fail(f"{image} is not built: run scripts/build-images.sh (or scripts/test-images.sh)")
