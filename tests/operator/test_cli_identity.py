"""The operator starts under a uid that has no passwd entry, as Kubernetes may run it (`runAsUser`).

kopf names itself with `getpass.getuser()` unless `POD_ID` is set, and that raises `KeyError` for
an unknown uid: the operator image crash-looped so. The CLI now sets `POD_ID` (the host name,
which is the pod's name in a pod) when the manifests' downward-API value is absent. Checked in a
real process under an unknown uid (`setpriv`, needs root), through kopf's own `detect_own_id`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys

import pytest
from catalyst_operator.cli import set_default_identity

UNKNOWN_UID = 4242
# getpass.getuser() reads these before the passwd database; a container has none of them.
LOGIN_VARS = ("LOGNAME", "USER", "LNAME", "USERNAME", "POD_ID")


def run_as_unknown_uid(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in LOGIN_VARS}
    return subprocess.run(
        ["setpriv", f"--reuid={UNKNOWN_UID}", f"--regid={UNKNOWN_UID}", "--clear-groups",
         sys.executable, "-c", code],
        env=env, capture_output=True, text=True, timeout=60, cwd="/",
    )  # fmt: skip


needs_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="switching to another uid needs root and setpriv"
)


@needs_setpriv
def test_kopf_identity_needs_no_passwd_entry_once_the_cli_sets_it():
    with pytest.raises(KeyError):
        pwd.getpwuid(UNKNOWN_UID)
    detect = "from kopf._core.engines.peering import detect_own_id; print(detect_own_id(manual=False))"

    without = run_as_unknown_uid(detect)
    assert without.returncode != 0 and "getpwuid(): uid not found" in without.stderr, without

    with_cli = run_as_unknown_uid(
        f"from catalyst_operator.cli import set_default_identity; set_default_identity(); {detect}"
    )
    assert with_cli.returncode == 0, with_cli.stderr
    assert with_cli.stdout.strip() == socket.gethostname()


def test_an_explicit_pod_id_wins_over_the_host_name():
    env = {"POD_ID": "catalyst-ocr-operator-7d9f-abcde"}
    assert set_default_identity(env) == "catalyst-ocr-operator-7d9f-abcde"
    empty: dict[str, str] = {}
    assert set_default_identity(empty) == socket.gethostname() == empty["POD_ID"]
