"""The result cache on real Redis and in memory: hits, TTL, the per-entry bound, keys that
change with whatever changes a result, and Redis outages that degrade to misses and recover."""

from __future__ import annotations

import asyncio

from jobs_servers import RedisServer

from ocr_service import metrics
from ocr_service.cache import MemoryCache, RedisCache, build_cache, mark_cached, result_key
from ocr_service.options import OcrOptions, OutputFormat, PreprocessOptions
from ocr_service.settings import Settings


def sample(name: str, labels: dict[str, str]) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def test_keys_change_with_everything_that_changes_a_result() -> None:
    base = OcrOptions()
    key = result_key("a" * 64, base, "json", "tesseract 5.3.0")
    assert key == result_key("a" * 64, OcrOptions(), "json", "tesseract 5.3.0")
    variants = [
        result_key("b" * 64, base, "json", "tesseract 5.3.0"),
        result_key("a" * 64, OcrOptions(lang="deu"), "json", "tesseract 5.3.0"),
        result_key("a" * 64, OcrOptions(psm=6), "json", "tesseract 5.3.0"),
        result_key("a" * 64, OcrOptions(dpi=200), "json", "tesseract 5.3.0"),
        result_key("a" * 64, OcrOptions(pages=(1,)), "json", "tesseract 5.3.0"),
        result_key("a" * 64, OcrOptions(preprocess=PreprocessOptions(steps={"deskew": False})), "json", "t 5.3.0"),
        result_key("a" * 64, base, "text", "tesseract 5.3.0"),
        result_key("a" * 64, base, "json", "tesseract 5.4.0"),
    ]
    assert len({key, *variants}) == len(variants) + 1
    # the output format lives in the variant, not in the options' cache key
    assert result_key("a" * 64, OcrOptions(format=OutputFormat.TEXT), "json", "v") == result_key(
        "a" * 64, base, "json", "v"
    )


async def test_memory_cache_is_a_bounded_lru_with_ttl() -> None:
    cache = MemoryCache(max_entries=2, max_entry_bytes=10, ttl_seconds=0.2)
    await cache.put("a", b"1")
    await cache.put("b", b"2")
    assert await cache.get("a") == b"1"  # a is now the most recent
    await cache.put("c", b"3")
    assert await cache.get("b") is None and await cache.get("a") == b"1" and await cache.get("c") == b"3"
    await cache.put("big", b"x" * 11)
    assert await cache.get("big") is None
    await asyncio.sleep(0.25)
    assert await cache.get("a") is None


async def test_redis_cache_hits_expires_and_bounds_entries(redis_server: RedisServer) -> None:
    cache = RedisCache(redis_server.url, max_entry_bytes=100, ttl_seconds=1)
    try:
        hits = sample("ocr_cache_lookups_total", {"result": "hit"})
        await cache.put("k-hit", b"value")
        assert await cache.get("k-hit") == b"value"
        assert sample("ocr_cache_lookups_total", {"result": "hit"}) == hits + 1
        await cache.put("k-big", b"x" * 101)
        assert await cache.get("k-big") is None
        await asyncio.sleep(1.2)
        assert await cache.get("k-hit") is None
    finally:
        await cache.close()


async def test_redis_outage_degrades_to_misses_and_recovers(own_redis: RedisServer) -> None:
    cache = RedisCache(own_redis.url, max_entry_bytes=1000, ttl_seconds=60, retry_after_seconds=0.2)
    try:
        await cache.put("k", b"v")
        assert await cache.get("k") == b"v"
        own_redis.stop()
        errors = sample("ocr_cache_errors_total", {"operation": "get"})
        started = asyncio.get_running_loop().time()
        assert await cache.get("k") is None
        await cache.put("k2", b"v2")  # swallowed, not raised
        assert await cache.get("k") is None  # in back-off: answered without touching the network
        assert asyncio.get_running_loop().time() - started < 3
        assert sample("ocr_cache_errors_total", {"operation": "get"}) >= errors + 2
        own_redis.start()  # same port, empty (no persistence)
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            await cache.put("k3", b"v3")
            if await cache.get("k3") == b"v3":
                break
            assert asyncio.get_running_loop().time() < deadline, "the cache did not reconnect"
            await asyncio.sleep(0.1)
    finally:
        await cache.close()


def test_build_cache_follows_the_settings(redis_server: RedisServer) -> None:
    assert build_cache(Settings(cache_ttl_seconds=0)).backend == "disabled"
    assert build_cache(Settings()).backend == "memory"
    assert build_cache(Settings(redis_url=redis_server.url)).backend == "redis"


def test_mark_cached_flags_json_only() -> None:
    import json

    body = json.dumps({"text": "a", "pages": [{"n": 1}]}).encode()
    assert json.loads(mark_cached(body, OutputFormat.JSON, cached=True)) == {
        "cached": True,
        "text": "a",
        "pages": [{"n": 1}],
    }
    assert json.loads(mark_cached(b"{}", OutputFormat.JSON, cached=False)) == {"cached": False}
    assert mark_cached(b"plain text", OutputFormat.TEXT, cached=True) == b"plain text"
