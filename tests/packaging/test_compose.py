"""docker-compose.yml, its development override and the config they mount (nginx, Prometheus,
Grafana): schema-valid, healthy start order, one image scheme, and values that agree with the
service's settings."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from packaging_support import (
    BIN,
    DASHBOARD_FILE,
    REPO,
    RULES_FILE,
    interpolation_default,
    load_yaml_file,
    project_version,
)

from ocr_service import errors
from ocr_service.contract import (
    CONTAINER_DATA_DIR,
    DEFAULT_IMAGE,
    HEALTH_PATH,
    HTTP_PORT,
    METRICS_PATH,
    READINESS_PATH,
    EnvVar,
)
from ocr_service.errors import PROBLEM_TYPE_BASE
from ocr_service.settings import SETTINGS_TABLE

COMPOSE = REPO / "docker-compose.yml"
COMPOSE_DEV = REPO / "docker-compose.dev.yml"
NGINX_TEMPLATE = REPO / "deploy" / "nginx" / "templates" / "default.conf.template"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
SETTING_DEFAULTS = {spec.env: spec.default for spec in SETTINGS_TABLE}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml_file(COMPOSE)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


def split_image(image: str) -> tuple[str, str]:
    """Repository and tag of an image reference that may contain `${VAR:-default}` parts."""
    depth = 0
    split_at = -1
    for index, char in enumerate(image):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == ":" and depth == 0:
            split_at = index
    assert split_at > 0, f"{image} has no tag"
    return image[:split_at], image[split_at + 1 :]


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's short-syntax volumes."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        mounts[target] = source
    return mounts


def test_compose_files_validate_against_the_compose_spec() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE), str(COMPOSE_DEV)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_is_healthchecked_limited_and_restarted(services: dict[str, Any]) -> None:
    assert {"ocr", "postgres", "redis", "proxy", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus") and limits.get("memory"), f"{name} has no CPU/memory limit"


def test_dependencies_wait_for_health(services: dict[str, Any]) -> None:
    assert set(services["ocr"]["depends_on"]) == {"postgres", "redis"}
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            assert services[dependency].get("healthcheck"), f"{name} waits for {dependency}, which has no health check"


def test_state_lives_in_named_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, service in services.items():
        for source in volume_mounts(service).values():
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
    assert volume_mounts(services["postgres"])["/var/lib/postgresql/data"] in declared
    assert volume_mounts(services["redis"])["/data"] in declared
    assert volume_mounts(services["ocr"])[CONTAINER_DATA_DIR] in declared


def test_ocr_service_image_build_and_settings(services: dict[str, Any]) -> None:
    ocr = services["ocr"]
    assert ocr["build"]["target"] == "production"
    image = ocr["image"]
    repository, tag = split_image(image)
    assert interpolation_default(repository, "CATALYST_IMAGE") == DEFAULT_IMAGE
    assert interpolation_default(tag, "CATALYST_IMAGE_TAG") == project_version()
    assert ocr["env_file"] == [{"path": ".env", "required": False}]
    # .env (from .env.example) sets OCR_LANGUAGES for readiness; compose also interpolates from .env,
    # so the build argument has its own variable: copying the example must not build an English-only image.
    languages = ocr["build"]["args"][EnvVar.LANGUAGES]
    assert "OCR_LANGUAGES" not in languages.replace("CATALYST_OCR_LANGUAGES", "")
    assert interpolation_default(languages, "CATALYST_OCR_LANGUAGES") == "eng deu fra"
    environment = ocr["environment"]
    assert environment[EnvVar.PORT] == str(HTTP_PORT)
    assert environment[EnvVar.HOST] == "0.0.0.0", "a value from .env must not hide the service inside its container"
    assert environment[EnvVar.DATA_DIR] == CONTAINER_DATA_DIR
    assert "@postgres:5432/" in environment[EnvVar.DATABASE_URL]
    assert interpolation_default(environment[EnvVar.REDIS_URL], "OCR_REDIS_URL") == "redis://redis:6379/0"
    grace = int(ocr["stop_grace_period"].removesuffix("s"))
    assert grace > float(SETTING_DEFAULTS[EnvVar.SHUTDOWN_GRACE_SECONDS]), "in-flight work may finish before SIGKILL"
    check = " ".join(ocr["healthcheck"]["test"])
    assert f"127.0.0.1:{HTTP_PORT}{HEALTH_PATH}" in check or f"127.0.0.1:{HTTP_PORT}{READINESS_PATH}" in check


def test_scalable_ocr_service_publishes_a_port_range_not_a_fixed_port(services: dict[str, Any]) -> None:
    (mapping,) = services["ocr"]["ports"]
    host, container = mapping.rsplit(":", 1)
    assert container == str(HTTP_PORT)
    host_ports = interpolation_default(host, "CATALYST_HOST_PORTS")
    low, high = (int(part) for part in host_ports.split("-"))
    assert high - low >= 2, "room for `--scale ocr=3` at least"
    assert "container_name" not in services["ocr"], "a fixed container name prevents --scale"


def test_backends(services: dict[str, Any]) -> None:
    postgres, redis = services["postgres"], services["redis"]
    match = re.fullmatch(r"postgres:(\d+)(?:\.\d+)?-alpine", postgres["image"])
    assert match and int(match.group(1)) >= 15
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert redis["image"].startswith("redis:")
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_profiles(services: dict[str, Any]) -> None:
    assert services["proxy"]["profiles"] == ["proxy"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    for core in ("ocr", "postgres", "redis"):
        assert "profiles" not in services[core], f"{core} starts without a profile"


def test_every_ocr_variable_compose_mentions_is_a_service_setting() -> None:
    known = {str(name) for name in EnvVar}
    for path in (COMPOSE, COMPOSE_DEV, NGINX_TEMPLATE):
        for name in set(re.findall(r"\bOCR_[A-Z0-9_]+", path.read_text(encoding="utf-8"))):
            assert name in known, f"{path.name}: {name} is not in ocr_service.contract.EnvVar"


# --- proxy ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx() -> str:
    return NGINX_TEMPLATE.read_text(encoding="utf-8")


def directive(config: str, name: str) -> list[str]:
    return [value.strip() for value in re.findall(rf"^\s*{name}\s+([^;]+);", config, re.MULTILINE)]


def test_proxy_template_variables_are_all_provided(services: dict[str, Any], nginx: str) -> None:
    proxy = services["proxy"]
    assert volume_mounts(proxy)["/etc/nginx/templates"] == "./deploy/nginx/templates"
    provided = set(proxy["environment"])
    used = set(re.findall(r"\$\{([A-Z0-9_]+)\}", nginx))
    assert used, "the template is parametrised"
    assert used <= provided, f"envsubst would leave {used - provided} unreplaced"
    # nginx's own lower-case variables must not look like environment variables.
    assert not re.findall(r"\$\{[a-z]", nginx)


def test_proxy_body_limit_equals_the_services(services: dict[str, Any], nginx: str) -> None:
    assert directive(nginx, "client_max_body_size") == [f"${{{EnvVar.MAX_UPLOAD_BYTES}}}"]
    value = services["proxy"]["environment"][EnvVar.MAX_UPLOAD_BYTES]
    assert interpolation_default(value, EnvVar.MAX_UPLOAD_BYTES) == SETTING_DEFAULTS[EnvVar.MAX_UPLOAD_BYTES]


def test_proxy_timeouts_outlast_a_synchronous_request(services: dict[str, Any], nginx: str) -> None:
    variable = "CATALYST_PROXY_TIMEOUT_SECONDS"
    timeout = int(interpolation_default(services["proxy"]["environment"][variable], variable))
    assert timeout > float(SETTING_DEFAULTS[EnvVar.TIMEOUT_SECONDS])
    for name in ("proxy_read_timeout", "proxy_send_timeout", "client_body_timeout"):
        assert f"${{{variable}}}s" in directive(nginx, name), name


def test_proxy_rate_limits_the_api(nginx: str) -> None:
    (zone,) = directive(nginx, "limit_req_zone")
    assert "zone=ocr_per_client:" in zone and "rate=${CATALYST_PROXY_RATE}" in zone
    api_location = nginx.split("location / {", 1)[1]
    assert "limit_req zone=ocr_per_client" in api_location
    assert directive(nginx, "limit_req_status") == ["429"]


def test_proxy_re_resolves_replicas_through_docker_dns(services: dict[str, Any], nginx: str) -> None:
    assert directive(nginx, "resolver")[0].startswith("127.0.0.11 ")
    (upstream,) = directive(nginx, "set \\$ocr_upstream")
    assert upstream == f"http://ocr:{HTTP_PORT}"
    assert "ocr" in services, "the upstream host is the compose service name"
    passes = directive(nginx, "proxy_pass")
    assert passes and all(value == "$ocr_upstream" for value in passes), "a variable makes nginx resolve at run time"
    assert not re.search(r"^\s*upstream\s", nginx, re.MULTILINE), "a static upstream block resolves once, at start-up"


def test_proxy_keeps_metrics_private(nginx: str) -> None:
    block = nginx.split(f"location = {METRICS_PATH} {{", 1)[1].split("}", 1)[0]
    assert "return 404" in block


# --- monitoring -------------------------------------------------------------------------------


def test_prometheus_scrapes_every_replica_with_the_shared_rules(services: dict[str, Any]) -> None:
    config = load_yaml_file(PROMETHEUS_CONFIG)
    mounts = volume_mounts(services["prometheus"])
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    rules_target = next(target for target, source in mounts.items() if source.endswith("prometheus-rules.yaml"))
    assert (REPO / mounts[rules_target]).resolve() == RULES_FILE
    assert any(Path(rules_target).match(pattern) for pattern in config["rule_files"])

    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "catalyst-ocr"]
    assert job["metrics_path"] == METRICS_PATH
    (dns,) = job["dns_sd_configs"]
    assert dns["names"] == ["ocr"] and dns["type"] == "A" and dns["port"] == HTTP_PORT
    # The shared rules select the service's series by this job name.
    assert 'job="catalyst-ocr"' in RULES_FILE.read_text(encoding="utf-8")


def test_alert_rules_file_is_a_prometheus_rule_file() -> None:
    rules = load_yaml_file(RULES_FILE)
    assert set(rules) == {"groups"}
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert alerts and all(rule.get("alert") and rule.get("expr") for rule in alerts)


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    mounts = volume_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    dashboards_target = next(t for t, s in mounts.items() if (REPO / s).resolve() == DASHBOARD_FILE.parent)

    (datasource,) = load_yaml_file(GRAFANA_PROVISIONING / "datasources" / "prometheus.yaml")["datasources"]
    assert datasource["type"] == "prometheus"
    prometheus_port = services["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert datasource["url"] == f"http://prometheus:{prometheus_port}"

    (provider,) = load_yaml_file(GRAFANA_PROVISIONING / "dashboards" / "catalyst-ocr.yaml")["providers"]
    assert provider["options"]["path"] == dashboards_target
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_target}/{DASHBOARD_FILE.name}"


# --- development override ---------------------------------------------------------------------


def test_development_override_hot_reloads_the_mounted_source() -> None:
    dev = load_yaml_file(COMPOSE_DEV)["services"]["ocr"]
    assert dev["build"]["target"] == "development"
    repository, tag = split_image(dev["image"])
    assert interpolation_default(repository, "CATALYST_IMAGE") == DEFAULT_IMAGE
    assert tag.endswith("-dev") and interpolation_default(tag, "CATALYST_IMAGE_TAG") == project_version()
    mounts = volume_mounts(dev)
    assert mounts["/src/ocr_service"] == "./ocr_service"
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    development = dockerfile.split("AS development", 1)[1].split("\nFROM ", 1)[0]
    assert '"/src/ocr_service"]' in development, "watchfiles watches where the source is mounted"
    for rule in dev["develop"]["watch"]:
        assert (REPO / rule["path"]).exists(), rule


def test_proxy_refusals_are_problem_json_like_the_services(nginx: str) -> None:
    bodies = {int(status): json.loads(body) for status, body in re.findall(r"return (\d{3}) '(\{.*?\})';", nginx)}
    assert set(bodies) == {413, 429, 503}
    for status, problem in bodies.items():
        assert problem["status"] == status and problem["type"].startswith(PROBLEM_TYPE_BASE)
    # Where the service has the same refusal, the proxy uses its exact type and title.
    for status, error in ((413, errors.PayloadTooLarge), (503, errors.ServiceUnavailable)):
        assert bodies[status]["type"] == PROBLEM_TYPE_BASE + error.slug
        assert bodies[status]["title"] == error.title
    assert "error_page 413 @payload_too_large;" in nginx and "error_page 429 @rate_limited;" in nginx
    assert "error_page 502 503 504 =503 @upstream_unavailable;" in nginx
    assert "proxy_intercept_errors" not in nginx, "the service's own problem answers pass through untouched"
    assert nginx.count("default_type application/problem+json;") == 3
