"""`catalyst-ocr-operator [run] [kopf run options...]`: the operator's command line.

Argument parsing only. Everything after the optional `run` goes to `kopf run` unchanged, so
kopf's usual flags work as documented by kopf: `--standalone`, `-n/--namespace` (repeatable,
globs allowed), `-A/--all-namespaces`, `-L/--liveness URL`, `-P/--peering NAME`,
`-p/--priority N`, `--dev`, `-v/--verbose`, `-d/--debug`, `-q/--quiet`, `--log-format`.
Operator settings come from `CATALYST_OPERATOR_*` environment variables (`settings.ENV_VARS`;
`--metrics-port N` is a shorthand for `CATALYST_OPERATOR_METRICS_PORT`);
cluster credentials from the in-cluster service account, else KUBECONFIG / ~/.kube/config.
Cluster-wide (`--all-namespaces`), the operator also watches the Prometheus Operator's CRDs
(`handlers.register_monitoring_crd_watch`); namespaced, it may not, and the resync timer stands in.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Final

import kopf.cli

from catalyst_operator.settings import ENV_VARS, OperatorSettings, SettingsError, package_version

PROG: Final = "catalyst-ocr-operator"
HANDLERS_MODULE: Final = "catalyst_operator.handlers"


def usage() -> str:
    settings = "\n".join(f"  {name:<42} {meaning}" for name, meaning in ENV_VARS.items())
    return (
        f"usage: {PROG} [run] [--metrics-port N] [kopf run options...]\n"
        f"       {PROG} --version\n\n"
        "Runs the Catalyst OCR operator (reconciles OcrDeployment resources) under kopf.\n"
        "Cluster credentials: in-cluster service account, else KUBECONFIG or ~/.kube/config.\n\n"
        f"settings (environment):\n{settings}\n\n"
        "kopf run options (passed through):"
    )


def _take_metrics_port(args: list[str]) -> list[str]:
    """`--metrics-port N` is ours, not kopf's: it sets CATALYST_OPERATOR_METRICS_PORT and is removed."""
    rest: list[str] = []
    iterator = iter(args)
    for arg in iterator:
        if arg == "--metrics-port":
            os.environ["CATALYST_OPERATOR_METRICS_PORT"] = next(iterator, "")
        elif arg.startswith("--metrics-port="):
            os.environ["CATALYST_OPERATOR_METRICS_PORT"] = arg.partition("=")[2]
        else:
            rest.append(arg)
    return rest


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"]:
        args = args[1:]
    if args[:1] in (["--version"], ["version"]):
        print(f"{PROG} {package_version()} (kopf {metadata.version('kopf')})")
        return
    args = _take_metrics_port(args)
    if args[:1] in (["-h"], ["--help"], ["help"]):
        print(usage())
        args = ["--help"]
    else:
        try:
            OperatorSettings.from_env()  # fail before connecting anywhere
        except SettingsError as error:
            print(f"{PROG}: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        if watches_all_namespaces(args):
            # Imported only now: importing the handlers reads settings (validated just above);
            # kopf's own `--module` import then finds the module loaded, this handler included.
            from catalyst_operator import handlers

            handlers.register_monitoring_crd_watch(kopf.get_default_registry())
    set_default_identity()
    kopf.cli.main(args=["run", "--module", HANDLERS_MODULE, *args], prog_name=PROG)


def set_default_identity(environ: dict[str, str] | None = None) -> str:
    """Give kopf an identity that needs no passwd entry, unless `POD_ID` already names one.

    Without `POD_ID`, kopf's `peering.detect_own_id` asks `getpass.getuser()`, which raises
    `KeyError` for a uid with no passwd entry: what Kubernetes gives a container run under
    `runAsUser` that its image does not know. The manifests set `POD_ID` from the downward API
    (`metadata.name`); elsewhere the host name stands in (in a pod, the pod's name too).
    """
    env = os.environ if environ is None else environ
    return env.setdefault("POD_ID", socket.gethostname())


def watches_all_namespaces(args: Sequence[str], environ: Mapping[str, str] | None = None) -> bool:
    """Whether kopf will run cluster-wide with these `kopf run` options, decided by kopf's own parser.

    Cluster-wide: `-A/--all-namespaces`, or neither that nor `-n/--namespace` (kopf's default, with a
    warning) unless the legacy `KOPF_RUN_NAMESPACE` names one. Only then is the operator given the
    ClusterRole (manifests/operator/rbac.yaml, chart `rbac.scope=cluster`), which lets it watch CRDs.
    """
    env = os.environ if environ is None else environ
    params = kopf.cli.run.make_context(PROG, list(args), resilient_parsing=True).params
    return bool(params["clusterwide"]) or not (params["namespaces"] or env.get("KOPF_RUN_NAMESPACE"))
