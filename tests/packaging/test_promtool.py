"""Prometheus' own checker on the monitoring files: the compose Prometheus config, the shared
alert rules, and every PromQL query of the Grafana dashboard (as recording rules, so promtool
parses them offline). Needs promtool (`apt-get install prometheus`, or PROMTOOL_BIN=/path);
the name-level checks in test_grafana_dashboard.py run everywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from packaging_support import DASHBOARD_FILE, REPO, RULES_FILE, missing_tool

PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    for candidate in (os.environ.get("PROMTOOL_BIN"), shutil.which("promtool")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    missing_tool("no promtool (apt-get install prometheus, or set PROMTOOL_BIN)")


def check(promtool: str, *args: str) -> str:
    result = subprocess.run([promtool, "check", *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_alert_rules_pass_promtool(promtool: str) -> None:
    output = check(promtool, "rules", str(RULES_FILE))
    assert "SUCCESS" in output


def test_compose_prometheus_config_passes_promtool(promtool: str, tmp_path: Path) -> None:
    """The config as the container sees it: the rules directory compose mounts, here a temp copy."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "catalyst-ocr.yaml").write_bytes(RULES_FILE.read_bytes())
    config = PROMETHEUS_CONFIG.read_text(encoding="utf-8")
    assert config.count("/etc/prometheus/rules/") == 1
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/rules/", f"{rules_dir}/"), "utf-8")
    output = check(promtool, "config", str(tmp_path / "prometheus.yml"))
    assert "1 rule files found" in output


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    # Grafana's variables, as Grafana substitutes them for "All" and a typical range.
    rules = [
        {"record": f"dashboard:query_{index}", "expr": query.replace("$job", ".+").replace("$__rate_interval", "1m")}
        for index, query in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    output = check(promtool, "rules", str(path))
    assert f"SUCCESS: {len(rules)} rules found" in output
