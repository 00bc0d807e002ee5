"""Fixtures for the service tests: settings in a temp dir and the app running in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from service_support import make_settings, running_app

from ocr_service.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """One running app for a whole module whose tests only send requests (starting one costs ~0.5 s).

    Modules using it set `pytestmark = pytest.mark.asyncio(loop_scope="module")`.
    """
    async with running_app(make_settings(tmp_path_factory.mktemp("service"))) as running:
        yield running
