"""The Grafana dashboard and the alert rules speak the service's real metric names.

Both are written once: the dashboard in the chart (compose's Grafana mounts the same file), the
rules in the operator's assets (compose's Prometheus mounts the same file). A renamed metric in
ocr_service/metrics.py fails here instead of leaving an empty panel or a silent alert.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from packaging_support import DASHBOARD_FILE, RULES_FILE, load_yaml_file
from prometheus_client.metrics_core import Metric

from ocr_service import metrics

METRIC_TOKEN = re.compile(r"\b((?:ocr|process|python)_[a-z0-9_]+)\b")
"""Series names of the service's namespaces (`ocr_*`) and prometheus-client's collectors."""
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def exported_series() -> set[str]:
    """Every series name the service's registry can expose, even for metrics with no samples yet."""
    names: set[str] = set()
    family: Metric
    for family in metrics.REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return data


def panel_expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def rule_expressions() -> list[str]:
    rules = load_yaml_file(RULES_FILE)
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_the_registry_exports_the_core_metrics() -> None:
    series = exported_series()
    assert {"ocr_http_requests_total", "ocr_http_request_duration_seconds_bucket", "ocr_pool_queued"} <= series


def test_every_metric_the_dashboard_queries_exists(dashboard: dict[str, Any]) -> None:
    series = exported_series()
    used = {name for expr in panel_expressions(dashboard) for name in METRIC_TOKEN.findall(expr)}
    assert used, "the dashboard queries the service's metrics"
    assert used <= series, f"not exported by ocr_service/metrics.py: {sorted(used - series)}"


def test_every_metric_the_alert_rules_use_exists() -> None:
    series = exported_series()
    used = {name for expr in rule_expressions() for name in METRIC_TOKEN.findall(expr)}
    assert used, "the rules alert on the service's metrics"
    assert used <= series, f"not exported by ocr_service/metrics.py: {sorted(used - series)}"


def test_dashboard_is_a_provisionable_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "catalyst-ocr" and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    # The datasource is a variable, so the same JSON works in compose and under kube-prometheus-stack.
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and panel.get("description"), panel["title"]
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], f"{panel['title']}: every query follows the job selector"


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        columns = range(grid["x"], grid["x"] + grid["w"])
        cells = {(x, y) for x in columns for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_dashboard_covers_traffic_errors_latency_saturation_quality_and_jobs(dashboard: dict[str, Any]) -> None:
    joined = "\n".join(panel_expressions(dashboard))
    for needle in (
        "ocr_http_requests_total",
        'status=~"5.."',
        "histogram_quantile(0.95",
        "ocr_pool_queued",
        "ocr_rejected_requests_total",
        "ocr_recognition_confidence_bucket",
        "ocr_job_queue_depth",
        "ocr_cache_lookups_total",
    ):
        assert needle in joined, needle
