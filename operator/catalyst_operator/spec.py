"""The `OcrDeployment` spec, parsed, validated and defaulted into one typed value.

The API server applies the CRD's defaults and checks its schema and CEL rules, but the
operator cannot rely on that alone: objects may come from an older CRD, from a test double
(KMock applies no schema), or break rules no schema can express (a default language that is
not in `languages`, a label value Kubernetes would refuse on the pod). `parse_spec` therefore
re-checks everything the builders depend on and raises `SpecError` naming the offending field,
so the runtime can report a condition instead of retrying an apply the API server would refuse.

The defaults below mirror the CRD's `default:` values; `tests/operator/test_crd.py` checks that
they agree, and the OCR defaults come from the service's own settings table.
"""

from __future__ import annotations

import copy
import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from catalyst_operator.constants import SELECTOR_LABEL_KEYS
from ocr_service.contract import SECRET_ENV_VARS, EnvVar
from ocr_service.options import PSM_RANGE, UNSUPPORTED_PSM
from ocr_service.settings import SETTINGS_TABLE


class SpecError(ValueError):
    """A spec problem the schema could not catch; `field` is its path, e.g. `spec.autoscaling.minReplicas`."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def service_default(env: EnvVar) -> str:
    """The service's own default for a setting, so the operator never restates it."""
    return next(spec.default for spec in SETTINGS_TABLE if spec.env == env)


DEFAULT_LANGUAGES: tuple[str, ...] = tuple(re.split(r"[+, ]+", service_default(EnvVar.LANGUAGES)))
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "500m", "memory": "512Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
DEFAULT_SERVICE_PORT = 80
DEFAULT_API_KEYS_SECRET_KEY = "api-keys"  # noqa: S105 - a key name, not a secret
DEFAULT_URL_SECRET_KEY = "url"  # noqa: S105 - a key name, not a secret

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PREPROCESS_MODES = ("auto", "none")
TOLERATION_OPERATORS = ("Exists", "Equal")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_LANGUAGE = re.compile(r"^[A-Za-z0-9_]+$")
_LANG_EXPR = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")
_DURATION = re.compile(r"^(?=.)([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_LABEL_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$")
_QUANTITY_SUFFIX: dict[str, int | Decimal] = {
    "": 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
MAX_NAME_LENGTH = 63
"""The CR name becomes the Service name, which must be a DNS-1035 label (at most 63 characters)."""


@dataclass(frozen=True)
class SecretRef:
    """One key of one Secret in the CR's namespace; `key` None means the whole Secret."""

    name: str
    key: str | None


@dataclass(frozen=True)
class OcrDefaults:
    """`spec.ocr`: the service's request defaults and limits, written to the ConfigMap."""

    lang: str = service_default(EnvVar.DEFAULT_LANG)
    psm: int = int(service_default(EnvVar.DEFAULT_PSM))
    oem: int = int(service_default(EnvVar.DEFAULT_OEM))
    preprocess: str = service_default(EnvVar.DEFAULT_PREPROCESS)
    timeout_seconds: int = int(float(service_default(EnvVar.TIMEOUT_SECONDS)))
    max_upload_bytes: int = int(service_default(EnvVar.MAX_UPLOAD_BYTES))
    max_pixels: int = int(service_default(EnvVar.MAX_PIXELS))
    max_pages: int = int(service_default(EnvVar.MAX_PAGES))
    workers: int | None = None
    """None: derived from the CPU limit by the Deployment builder."""


@dataclass(frozen=True)
class Autoscaling:
    enabled: bool = False
    min_replicas: int = 1
    max_replicas: int = 3
    target_cpu_utilization_percentage: int = 70


@dataclass(frozen=True)
class DisruptionBudget:
    """Exactly one of the two is set (an int or a percentage string like `"50%"`)."""

    min_available: int | str | None = None
    max_unavailable: int | str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    type: str = "ClusterIP"
    port: int = DEFAULT_SERVICE_PORT
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceMonitorSpec:
    enabled: bool = False
    interval: str = "30s"
    scrape_timeout: str = "10s"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PrometheusRuleSpec:
    enabled: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitoringSpec:
    service_monitor: ServiceMonitorSpec = field(default_factory=ServiceMonitorSpec)
    prometheus_rule: PrometheusRuleSpec = field(default_factory=PrometheusRuleSpec)

    @property
    def any_enabled(self) -> bool:
        return self.service_monitor.enabled or self.prometheus_rule.enabled


@dataclass(frozen=True)
class NetworkPolicySpec:
    """Ingress to the http port only; from the CR's namespace (unless turned off) and from `sources`."""

    enabled: bool = False
    allow_same_namespace: bool = True
    sources: tuple[Mapping[str, Any], ...] = ()
    """NetworkPolicyPeer objects (`podSelector`, `namespaceSelector`, `ipBlock`) from `spec.networkPolicy.from`."""


@dataclass(frozen=True)
class Placement:
    """Where the pods may run; copied onto the pod spec as given."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] | None = None
    topology_spread_constraints: tuple[Mapping[str, Any], ...] = ()
    priority_class_name: str | None = None


JOB_WORKER_TRIGGERS = ("postgresql", "prometheus")


@dataclass(frozen=True)
class JobWorkersAutoscaling:
    """`spec.jobWorkers.autoscaling`: scale the job workers on their backlog (KEDA), down to zero."""

    enabled: bool = False
    min_replicas: int = 0
    max_replicas: int = 10
    pages_per_replica: int = 4
    """Target backlog (pages queued + in progress) per worker pod."""
    scale_down_stabilization_seconds: int = 300
    polling_interval_seconds: int = 15
    trigger: str = "postgresql"
    """`postgresql`: KEDA counts the backlog in the job database itself (default; works at zero pods);
    `prometheus`: KEDA asks Prometheus for `ocr_job_backlog_pages` (needs a scraped ServiceMonitor)."""
    prometheus_server_address: str | None = None


@dataclass(frozen=True)
class JobWorkersSpec:
    """`spec.jobWorkers`: a second Deployment running only job workers (`python -m ocr_service.jobs`)."""

    replicas: int = 1
    """Used when autoscaling is off."""
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_RESOURCES))
    placement: Placement = field(default_factory=Placement)
    autoscaling: JobWorkersAutoscaling = field(default_factory=JobWorkersAutoscaling)


@dataclass(frozen=True)
class OcrDeploymentSpec:
    """Typed, defaulted view of an `OcrDeployment`'s `.spec` (plus the CR's name and namespace)."""

    name: str
    namespace: str
    image: str | None = None
    """None: the operator's default image (`BuildContext.default_image`)."""
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    replicas: int = 1
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    ocr: OcrDefaults = field(default_factory=OcrDefaults)
    database: SecretRef | None = None
    redis: SecretRef | None = None
    api_keys: SecretRef | None = None
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_RESOURCES))
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    pod_disruption_budget: DisruptionBudget | None = None
    service: ServiceSpec = field(default_factory=ServiceSpec)
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)
    network_policy: NetworkPolicySpec = field(default_factory=NetworkPolicySpec)
    placement: Placement = field(default_factory=Placement)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    env: tuple[Mapping[str, Any], ...] = ()
    job_workers: JobWorkersSpec | None = None
    """None: the API pods recognise job pages themselves (no separate workers)."""


def referenced_secrets(spec: OcrDeploymentSpec) -> list[SecretRef]:
    """The Secrets (and keys) the pods read, in a stable order: database, redis, API keys."""
    return [ref for ref in (spec.database, spec.redis, spec.api_keys) if ref is not None]


def parse_quantity(value: int | str, path: str) -> Decimal:
    """A Kubernetes resource quantity (`500m`, `2`, `1.5Gi`, `1e3`) as a number of base units."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SpecError(path, f"must be a quantity such as '500m' or '2', got {value!r}")
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise SpecError(path, f"{value!r} is not a Kubernetes quantity (e.g. '500m', '2', '1Gi')")
    number, suffix = match.group(1), match.group(3) or ""
    if len(suffix) > 1 and suffix[0] in "eE":
        return Decimal(number + suffix)
    return Decimal(number) * Decimal(_QUANTITY_SUFFIX[suffix])


def cpu_cores(spec: OcrDeploymentSpec, resources: Mapping[str, Mapping[str, str]] | None = None) -> Decimal | None:
    """The CPU limit in cores, or the request when there is no limit, or None when neither is set.

    Of the API pods' `spec.resources`, or of `resources` when given (the job workers' own).
    """
    for section in ("limits", "requests"):
        cpu = (spec.resources if resources is None else resources).get(section, {}).get("cpu")
        if cpu is not None:
            return parse_quantity(cpu, f"resources.{section}.cpu")
    return None


def effective_workers(spec: OcrDeploymentSpec, resources: Mapping[str, Mapping[str, str]] | None = None) -> int:
    """`spec.ocr.workers` when set, else one worker per (started) CPU core of the limit, at least 1."""
    if spec.ocr.workers is not None:
        return spec.ocr.workers
    cores = cpu_cores(spec, resources)
    return max(1, math.ceil(cores)) if cores is not None else 1


def duration_seconds(text: str) -> float:
    """A Prometheus-style duration limited to ms/s/m/h units (`1m30s`) in seconds."""
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(int(number) * scale[unit] for number, unit in _DURATION_PART.findall(text))


# --- readers: each checks one JSON value and names its path in the error -------------------


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(path, f"must be an object, got {type(value).__name__}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(path, f"must be a list, got {type(value).__name__}")
    return value


def _bool(obj: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{path}.{key}", f"must be true or false, got {value!r}")
    return value


def _int(obj: Mapping[str, Any], key: str, path: str, default: int | None, low: int, high: int) -> int | None:
    value = obj.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{path}.{key}", f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise SpecError(f"{path}.{key}", f"must be between {low} and {high}, got {value}")
    return value


def _psm(obj: Mapping[str, Any], path: str, default: int) -> int:
    """The service refuses to start on a default psm that recognises nothing (0, 2): so does the spec."""
    value = _req_int(obj, "psm", path, default, PSM_RANGE[0], PSM_RANGE[1])
    if value in UNSUPPORTED_PSM:
        raise SpecError(
            f"{path}.psm", f"must be 1 or 3-13 (0 only detects orientation, 2 is not implemented); got {value}"
        )
    return value


def _req_int(obj: Mapping[str, Any], key: str, path: str, default: int, low: int, high: int) -> int:
    value = _int(obj, key, path, default, low, high)
    assert value is not None
    return value


def _str(
    obj: Mapping[str, Any], key: str, path: str, default: str | None, pattern: re.Pattern[str] | None = None
) -> str | None:
    value = obj.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError(f"{path}.{key}", f"must be a string, got {value!r}")
    if pattern is not None and not pattern.match(value):
        raise SpecError(f"{path}.{key}", f"{value!r} does not match {pattern.pattern}")
    return value


def _choice(obj: Mapping[str, Any], key: str, path: str, default: str, choices: tuple[str, ...]) -> str:
    value = obj.get(key, default)
    if value not in choices:
        raise SpecError(f"{path}.{key}", f"must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


def _qualified_key(key: str) -> bool:
    """A label or annotation key: optional DNS-subdomain prefix, then a name of at most 63 chars."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME_PART.match(name))


def _string_map(value: Any, path: str, *, labels: bool) -> dict[str, str]:
    """Labels (keys and values checked) or annotations (keys checked; values any string)."""
    result: dict[str, str] = {}
    for key, item in _object(value, path).items():
        if not isinstance(key, str) or not _qualified_key(key):
            raise SpecError(path, f"{key!r} is not a valid {'label' if labels else 'annotation'} key")
        if not isinstance(item, str):
            raise SpecError(f"{path}[{key}]", f"must be a string, got {item!r}")
        if labels and (len(item) > 63 or not _LABEL_VALUE.match(item)):
            raise SpecError(f"{path}[{key}]", f"{item!r} is not a valid label value")
        result[key] = item
    return result


def _int_or_percent(value: Any, path: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SpecError(path, f"must be an integer or a percentage like '50%', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise SpecError(path, f"must not be negative, got {value}")
        return value
    if not _PERCENT.match(value):
        raise SpecError(path, f"must be an integer or a percentage between '0%' and '100%', got {value!r}")
    return value


def _secret_ref(obj: Mapping[str, Any], path: str, default_key: str) -> SecretRef:
    name = _str(obj, "name", path, None, _DNS_SUBDOMAIN)
    if name is None:
        raise SpecError(f"{path}.name", "is required")
    key = _str(obj, "key", path, default_key, _SECRET_KEY)
    return SecretRef(name=name, key=key)


def _optional_secret_ref(spec: Mapping[str, Any], section: str, field: str, default_key: str) -> SecretRef | None:
    """`spec.<section>.<field>` as a SecretRef, or None when the section or the reference is absent."""
    parent = _object(spec.get(section), f"spec.{section}")
    if parent.get(field) is None:
        return None
    path = f"spec.{section}.{field}"
    return _secret_ref(_object(parent[field], path), path, default_key)


# --- sections --------------------------------------------------------------------------------


def _parse_ocr(value: Any) -> OcrDefaults:
    path = "spec.ocr"
    obj = _object(value, path)
    base = OcrDefaults()
    return OcrDefaults(
        lang=_str(obj, "lang", path, base.lang, _LANG_EXPR) or base.lang,
        psm=_psm(obj, path, base.psm),
        oem=_req_int(obj, "oem", path, base.oem, 0, 3),
        preprocess=_choice(obj, "preprocess", path, base.preprocess, PREPROCESS_MODES),
        timeout_seconds=_req_int(obj, "timeoutSeconds", path, base.timeout_seconds, 1, 3600),
        max_upload_bytes=_req_int(obj, "maxUploadBytes", path, base.max_upload_bytes, 1024, 2**31),
        max_pixels=_req_int(obj, "maxPixels", path, base.max_pixels, 10_000, 1_000_000_000),
        max_pages=_req_int(obj, "maxPages", path, base.max_pages, 1, 10_000),
        workers=_int(obj, "workers", path, None, 0, 256),
    )


def _parse_languages(value: Any, ocr: OcrDefaults) -> tuple[str, ...]:
    path = "spec.languages"
    items = _list(value, path) if value is not None else list(DEFAULT_LANGUAGES)
    if not 1 <= len(items) <= 32:
        raise SpecError(path, f"must list between 1 and 32 languages, got {len(items)}")
    for index, lang in enumerate(items):
        if not isinstance(lang, str) or not _LANGUAGE.match(lang):
            raise SpecError(f"{path}[{index}]", f"{lang!r} is not a Tesseract language code such as 'eng'")
    if len(set(items)) != len(items):
        raise SpecError(path, "must not list a language twice")
    missing = [lang for lang in ocr.lang.split("+") if lang not in items]
    if missing:
        raise SpecError("spec.ocr.lang", f"uses {', '.join(missing)}, which spec.languages does not list")
    return tuple(items)


def _parse_resources(value: Any, path: str = "spec.resources") -> dict[str, dict[str, str]]:
    if value is None:
        return {section: dict(items) for section, items in DEFAULT_RESOURCES.items()}
    obj = _object(value, path)
    result: dict[str, dict[str, str]] = {}
    for section, items in obj.items():
        if section not in ("limits", "requests"):
            raise SpecError(f"{path}.{section}", "unknown field (only limits and requests)")
        result[section] = {}
        for resource, quantity in _object(items, f"{path}.{section}").items():
            parse_quantity(quantity, f"{path}.{section}.{resource}")
            result[section][str(resource)] = str(quantity)
    for resource, request in result.get("requests", {}).items():
        limit = result.get("limits", {}).get(resource)
        if limit is not None and parse_quantity(request, "") > parse_quantity(limit, ""):
            raise SpecError(f"{path}.requests.{resource}", f"request {request} exceeds the limit {limit}")
    return result


def _parse_autoscaling(value: Any) -> Autoscaling:
    path = "spec.autoscaling"
    obj = _object(value, path)
    base = Autoscaling()
    result = Autoscaling(
        enabled=_bool(obj, "enabled", path, base.enabled),
        min_replicas=_req_int(obj, "minReplicas", path, base.min_replicas, 1, 1000),
        max_replicas=_req_int(obj, "maxReplicas", path, base.max_replicas, 1, 1000),
        target_cpu_utilization_percentage=_req_int(
            obj, "targetCPUUtilizationPercentage", path, base.target_cpu_utilization_percentage, 1, 100
        ),
    )
    if result.min_replicas > result.max_replicas:
        raise SpecError(
            f"{path}.minReplicas",
            f"({result.min_replicas}) must not exceed {path}.maxReplicas ({result.max_replicas})",
        )
    return result


def _parse_pdb(value: Any) -> DisruptionBudget | None:
    path = "spec.podDisruptionBudget"
    if value is None:
        return None
    obj = _object(value, path)
    present = [key for key in ("minAvailable", "maxUnavailable") if obj.get(key) is not None]
    if len(present) != 1:
        raise SpecError(path, "set exactly one of minAvailable and maxUnavailable")
    key = present[0]
    amount = _int_or_percent(obj[key], f"{path}.{key}")
    if key == "minAvailable":
        return DisruptionBudget(min_available=amount)
    return DisruptionBudget(max_unavailable=amount)


def _parse_service(value: Any) -> ServiceSpec:
    path = "spec.service"
    obj = _object(value, path)
    return ServiceSpec(
        type=_choice(obj, "type", path, "ClusterIP", SERVICE_TYPES),
        port=_req_int(obj, "port", path, DEFAULT_SERVICE_PORT, 1, 65535),
        annotations=_string_map(obj.get("annotations"), f"{path}.annotations", labels=False),
    )


def _parse_monitoring(value: Any) -> MonitoringSpec:
    path = "spec.monitoring"
    obj = _object(value, path)
    sm_path = f"{path}.serviceMonitor"
    sm = _object(obj.get("serviceMonitor"), sm_path)
    base = ServiceMonitorSpec()
    monitor = ServiceMonitorSpec(
        enabled=_bool(sm, "enabled", sm_path, base.enabled),
        interval=_str(sm, "interval", sm_path, base.interval, _DURATION) or base.interval,
        scrape_timeout=_str(sm, "scrapeTimeout", sm_path, base.scrape_timeout, _DURATION) or base.scrape_timeout,
        labels=_string_map(sm.get("labels"), f"{sm_path}.labels", labels=True),
    )
    if duration_seconds(monitor.scrape_timeout) > duration_seconds(monitor.interval):
        raise SpecError(
            f"{sm_path}.scrapeTimeout", f"({monitor.scrape_timeout}) must not exceed the interval ({monitor.interval})"
        )
    pr_path = f"{path}.prometheusRule"
    pr = _object(obj.get("prometheusRule"), pr_path)
    rule = PrometheusRuleSpec(
        enabled=_bool(pr, "enabled", pr_path, False),
        labels=_string_map(pr.get("labels"), f"{pr_path}.labels", labels=True),
    )
    return MonitoringSpec(service_monitor=monitor, prometheus_rule=rule)


def _cidr(value: Any, path: str) -> str:
    try:
        if not isinstance(value, str) or "/" not in value:
            raise ValueError(value)
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise SpecError(path, f"{value!r} is not a CIDR such as 10.0.0.0/16") from None
    return value


def _parse_network_policy(value: Any) -> NetworkPolicySpec:
    path = "spec.networkPolicy"
    obj = _object(value, path)
    sources = []
    for index, peer in enumerate(_list(obj.get("from"), f"{path}.from")):
        peer_path = f"{path}.from[{index}]"
        peer_obj = _object(peer, peer_path)
        known = {"podSelector", "namespaceSelector", "ipBlock"}
        if not peer_obj or not set(peer_obj) <= known:
            raise SpecError(peer_path, "must set podSelector, namespaceSelector and/or ipBlock (and nothing else)")
        if "ipBlock" in peer_obj and len(peer_obj) > 1:
            raise SpecError(peer_path, "ipBlock cannot be combined with podSelector or namespaceSelector")
        for selector in ("podSelector", "namespaceSelector"):
            if selector in peer_obj:
                _object(peer_obj[selector], f"{peer_path}.{selector}")
        if "ipBlock" in peer_obj:
            block = _object(peer_obj["ipBlock"], f"{peer_path}.ipBlock")
            _cidr(block.get("cidr"), f"{peer_path}.ipBlock.cidr")
            for index_except, excluded in enumerate(_list(block.get("except"), f"{peer_path}.ipBlock.except")):
                _cidr(excluded, f"{peer_path}.ipBlock.except[{index_except}]")
        sources.append(dict(peer_obj))
    return NetworkPolicySpec(
        enabled=_bool(obj, "enabled", path, False),
        allow_same_namespace=_bool(obj, "allowSameNamespace", path, True),
        sources=tuple(sources),
    )


def _parse_tolerations(value: Any, path: str = "spec.tolerations") -> tuple[Mapping[str, Any], ...]:
    result = []
    for index, item in enumerate(_list(value, path)):
        item_path = f"{path}[{index}]"
        toleration = _object(item, item_path)
        operator = toleration.get("operator", "Equal")
        if operator not in TOLERATION_OPERATORS:
            raise SpecError(f"{item_path}.operator", f"must be Exists or Equal, got {operator!r}")
        effect = toleration.get("effect")
        if effect not in (None, "", *TOLERATION_EFFECTS):
            raise SpecError(f"{item_path}.effect", f"must be one of {', '.join(TOLERATION_EFFECTS)}, got {effect!r}")
        if operator == "Exists" and toleration.get("value"):
            raise SpecError(f"{item_path}.value", "must be empty when operator is Exists")
        result.append(dict(toleration))
    return tuple(result)


def _parse_placement(spec: Mapping[str, Any], path: str = "spec") -> Placement:
    spread = []
    for index, item in enumerate(_list(spec.get("topologySpreadConstraints"), f"{path}.topologySpreadConstraints")):
        item_path = f"{path}.topologySpreadConstraints[{index}]"
        constraint = _object(item, item_path)
        for required in ("maxSkew", "topologyKey", "whenUnsatisfiable"):
            if required not in constraint:
                raise SpecError(f"{item_path}.{required}", "is required")
        spread.append(dict(constraint))
    affinity = spec.get("affinity")
    return Placement(
        node_selector=_string_map(spec.get("nodeSelector"), f"{path}.nodeSelector", labels=True),
        tolerations=_parse_tolerations(spec.get("tolerations"), f"{path}.tolerations"),
        affinity=dict(_object(affinity, f"{path}.affinity")) if affinity is not None else None,
        topology_spread_constraints=tuple(spread),
        priority_class_name=_str(spec, "priorityClassName", path, None, _DNS_SUBDOMAIN),
    )


def _parse_job_workers(value: Any, has_database: bool) -> JobWorkersSpec | None:
    path = "spec.jobWorkers"
    if value is None:
        return None
    obj = _object(value, path)
    if not has_database:
        raise SpecError(
            path,
            "job workers need spec.database (PostgreSQL): they and the API pods share the job queue through it",
        )
    scaling_path = f"{path}.autoscaling"
    scaling = _object(obj.get("autoscaling"), scaling_path)
    base = JobWorkersAutoscaling()
    autoscaling = JobWorkersAutoscaling(
        enabled=_bool(scaling, "enabled", scaling_path, base.enabled),
        min_replicas=_req_int(scaling, "minReplicas", scaling_path, base.min_replicas, 0, 1000),
        max_replicas=_req_int(scaling, "maxReplicas", scaling_path, base.max_replicas, 1, 1000),
        pages_per_replica=_req_int(scaling, "pagesPerReplica", scaling_path, base.pages_per_replica, 1, 10000),
        scale_down_stabilization_seconds=_req_int(
            scaling, "scaleDownStabilizationSeconds", scaling_path, base.scale_down_stabilization_seconds, 0, 3600
        ),
        polling_interval_seconds=_req_int(
            scaling, "pollingIntervalSeconds", scaling_path, base.polling_interval_seconds, 1, 3600
        ),
        trigger=_choice(scaling, "trigger", scaling_path, base.trigger, JOB_WORKER_TRIGGERS),
        prometheus_server_address=_str(scaling, "prometheusServerAddress", scaling_path, None),
    )
    if autoscaling.min_replicas > autoscaling.max_replicas:
        raise SpecError(
            f"{scaling_path}.minReplicas",
            f"({autoscaling.min_replicas}) must not exceed {scaling_path}.maxReplicas ({autoscaling.max_replicas})",
        )
    if autoscaling.trigger == "prometheus" and not autoscaling.prometheus_server_address:
        raise SpecError(f"{scaling_path}.prometheusServerAddress", "is required with trigger prometheus")
    return JobWorkersSpec(
        replicas=_req_int(obj, "replicas", path, 1, 0, 1000),
        resources=_parse_resources(obj.get("resources"), f"{path}.resources"),
        placement=_parse_placement(obj, path),
        autoscaling=autoscaling,
    )


def _parse_env(value: Any) -> tuple[Mapping[str, Any], ...]:
    path = "spec.env"
    seen: set[str] = set()
    result = []
    for index, item in enumerate(_list(value, path)):
        item_path = f"{path}[{index}]"
        var = _object(item, item_path)
        name = _str(var, "name", item_path, None, _ENV_NAME)
        if name is None:
            raise SpecError(f"{item_path}.name", "is required")
        if name in seen:
            raise SpecError(f"{item_path}.name", f"{name} is listed twice")
        seen.add(name)
        if "value" in var and "valueFrom" in var:
            raise SpecError(item_path, "set value or valueFrom, not both")
        if name in SECRET_ENV_VARS and "value" in var:
            raise SpecError(f"{item_path}.value", f"{name} carries a credential: use valueFrom.secretKeyRef")
        unknown = set(var) - {"name", "value", "valueFrom"}
        if unknown:
            raise SpecError(item_path, f"unknown field(s) {', '.join(sorted(unknown))}")
        result.append(dict(var))
    return tuple(result)


def _parse_pod_labels(value: Any) -> dict[str, str]:
    labels = _string_map(value, "spec.podLabels", labels=True)
    clash = sorted(set(labels) & set(SELECTOR_LABEL_KEYS))
    if clash:
        raise SpecError("spec.podLabels", f"must not set the selector label(s) {', '.join(clash)}")
    return labels


def parse_spec(body: Mapping[str, Any]) -> OcrDeploymentSpec:
    """Parse the whole CR object into an `OcrDeploymentSpec`; raise `SpecError` naming the first bad field."""
    metadata = _object(body.get("metadata"), "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not _DNS_LABEL.match(name):
        raise SpecError(
            "metadata.name",
            f"{name!r} must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, "
            f"at most {MAX_NAME_LENGTH} characters) because it names the Service",
        )
    namespace = metadata.get("namespace") or "default"
    spec = _object(body.get("spec"), "spec")
    ocr = _parse_ocr(spec.get("ocr"))
    pull_secrets = []
    for index, item in enumerate(_list(spec.get("imagePullSecrets"), "spec.imagePullSecrets")):
        item_path = f"spec.imagePullSecrets[{index}]"
        pull_secret = _str(_object(item, item_path), "name", item_path, None, _DNS_SUBDOMAIN)
        if pull_secret is None:
            raise SpecError(f"{item_path}.name", "is required")
        pull_secrets.append(pull_secret)
    image = _str(spec, "image", "spec", None)
    if image is not None and (not image.strip() or image != image.strip()):
        raise SpecError("spec.image", f"{image!r} is not an image reference")
    database = _optional_secret_ref(spec, "database", "urlSecretRef", DEFAULT_URL_SECRET_KEY)
    result = OcrDeploymentSpec(
        name=name,
        namespace=str(namespace),
        image=image,
        image_pull_policy=_choice(spec, "imagePullPolicy", "spec", "IfNotPresent", PULL_POLICIES),
        image_pull_secrets=tuple(pull_secrets),
        replicas=_req_int(spec, "replicas", "spec", 1, 0, 1000),
        languages=_parse_languages(spec.get("languages"), ocr),
        ocr=ocr,
        database=database,
        redis=_optional_secret_ref(spec, "redis", "urlSecretRef", DEFAULT_URL_SECRET_KEY),
        api_keys=_optional_secret_ref(spec, "auth", "apiKeysSecretRef", DEFAULT_API_KEYS_SECRET_KEY),
        resources=_parse_resources(spec.get("resources")),
        autoscaling=_parse_autoscaling(spec.get("autoscaling")),
        pod_disruption_budget=_parse_pdb(spec.get("podDisruptionBudget")),
        service=_parse_service(spec.get("service")),
        monitoring=_parse_monitoring(spec.get("monitoring")),
        network_policy=_parse_network_policy(spec.get("networkPolicy")),
        placement=_parse_placement(spec),
        pod_labels=_parse_pod_labels(spec.get("podLabels")),
        pod_annotations=_string_map(spec.get("podAnnotations"), "spec.podAnnotations", labels=False),
        env=_parse_env(spec.get("env")),
        job_workers=_parse_job_workers(spec.get("jobWorkers"), database is not None),
    )
    if result.autoscaling.enabled and cpu_cores(result) is None:
        raise SpecError(
            "spec.autoscaling.enabled",
            "CPU-based autoscaling needs spec.resources.requests.cpu (or limits.cpu): utilisation is relative to it",
        )
    return result
