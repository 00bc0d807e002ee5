"""What a real API server refuses on the wire and KMock serves: checked for every emulated request.

KMock parses no query parameter and accepts any patch content type, so kopf's watch with
`timeoutSeconds=300.0` (a float setting) passed every test while a real API server answered
`400 BadRequest: strconv.ParseInt: parsing "300.0": invalid syntax` and the operator never started
(issue 9). `ClusterEmulator` (in `testing`) asks `violation(request)` first and, like the real
server, refuses with the same status code — so the operator visibly fails in the test — and keeps
the list so the test fails too.

The rules, from apimachinery's query-parameter conversion and the PATCH handler:

- integer parameters (`timeoutSeconds`, `limit`, `gracePeriodSeconds`) go through
  `strconv.ParseInt`: digits only (400);
- `resourceVersion` on a list or watch is a decimal number for the etcd storage, or empty (400);
- booleans (`watch`, `allowWatchBookmarks`, `force`, ...) are `true`/`false`/`1`/`0`: anything else
  is read as true, never what a client meant;
- PATCH needs a patch content type (415); strategic merge patch exists only for built-in kinds,
  never for custom resources (415);
- an apply patch needs `fieldManager` (422), and `force` is only for apply patches (422).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

INTEGER_PARAMS: Final = ("timeoutSeconds", "limit", "gracePeriodSeconds")
BOOLEAN_PARAMS: Final = ("watch", "allowWatchBookmarks", "force", "sendInitialEvents")
BOOLEAN_VALUES: Final = ("true", "false", "1", "0")
APPLY: Final = "application/apply-patch+yaml"
STRATEGIC: Final = "application/strategic-merge-patch+json"
PATCH_TYPES: Final = (APPLY, "application/merge-patch+json", "application/json-patch+json", STRATEGIC)
MAX_FIELD_MANAGER: Final = 128

_INTEGER: Final = re.compile(r"^-?[0-9]+$")
_RESOURCE_VERSION: Final = re.compile(r"^[0-9]*$")


@dataclass(frozen=True)
class Violation:
    """One request a real API server would refuse: the status it answers and why."""

    status: int
    reason: str
    message: str


def is_custom_group(group: str | None) -> bool:
    """Served through a CRD: built-in groups have no dot (core, apps, ...) or end in `.k8s.io`."""
    return bool(group) and "." in str(group) and not str(group).endswith(".k8s.io")


def violation(
    method: str, params: Mapping[str, str], content_type: str, group: str | None, *, is_watch_or_list: bool
) -> Violation | None:
    """The first rule the request breaks, or None. `content_type` without parameters (`; charset`)."""
    for name in INTEGER_PARAMS:
        if name in params and not _INTEGER.match(params[name]):
            return Violation(400, "BadRequest", f'{name}: strconv.ParseInt: parsing "{params[name]}": invalid syntax')
    if is_watch_or_list and not _RESOURCE_VERSION.match(params.get("resourceVersion", "")):
        return Violation(400, "BadRequest", f"resourceVersion: invalid value {params['resourceVersion']!r}")
    for name in BOOLEAN_PARAMS:
        if name in params and params[name].lower() not in BOOLEAN_VALUES:
            return Violation(400, "BadRequest", f"{name}: {params[name]!r} is not a boolean (read as true)")
    if method != "PATCH":
        return None
    kind = content_type.split(";")[0].strip().lower()
    if kind not in PATCH_TYPES:
        return Violation(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {kind}")
    if kind == STRATEGIC and is_custom_group(group):
        return Violation(415, "UnsupportedMediaType", "strategic merge patch is not supported for custom resources")
    manager = params.get("fieldManager", "")
    if kind == APPLY and not manager:
        return Violation(422, "Invalid", "fieldManager: Required value: is required for apply patch")
    if len(manager) > MAX_FIELD_MANAGER:
        return Violation(422, "Invalid", f"fieldManager: longer than {MAX_FIELD_MANAGER} characters")
    if kind != APPLY and "force" in params:
        return Violation(422, "Invalid", "force: Forbidden: may not be specified for non-apply patch")
    return None
