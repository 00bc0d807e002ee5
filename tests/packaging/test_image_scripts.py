"""The image scripts and the release workflow: wired where CI runs them, naming the images the
manifests use, and (the workflow, which cannot run here) valid against GitHub's schema."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from packaging_support import BIN, REPO

SCRIPTS = REPO / "scripts"
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
IMAGE_SCRIPTS = ("start-dockerd.sh", "build-base-image.sh", "build-images.sh", "test-images.sh")


def _manifest_images() -> tuple[str, str]:
    """(operator image, service image) as manifests/operator/deployment.yaml names them."""
    deployment = yaml.safe_load((REPO / "manifests" / "operator" / "deployment.yaml").read_text(encoding="utf-8"))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    return container["image"], env["CATALYST_OPERATOR_DEFAULT_IMAGE"]


@pytest.mark.parametrize("script", IMAGE_SCRIPTS)
def test_image_scripts_parse(script: str) -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPTS / script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_ci_runs_the_image_tests_after_pytest() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/test.sh" in ci
    test_sh = (SCRIPTS / "test.sh").read_text(encoding="utf-8")
    assert test_sh.index("pytest") < test_sh.index("scripts/test-images.sh")
    test_images = (SCRIPTS / "test-images.sh").read_text(encoding="utf-8")
    for needed in ("scripts/start-dockerd.sh", "scripts/build-images.sh", "scripts/build-base-image.sh"):
        assert needed in test_images
    assert re.search(r"CATALYST_TEST_IMAGES=1 \S*python -m pytest .*tests/images", test_images)


def test_build_images_tags_the_names_the_manifests_run() -> None:
    operator_image, service_image = _manifest_images()
    script = (SCRIPTS / "build-images.sh").read_text(encoding="utf-8")
    version = re.search(r'^version = "(.*)"', (REPO / "pyproject.toml").read_text(encoding="utf-8"), re.MULTILINE)
    assert version is not None
    names = {
        target: name.replace("$IMAGE_REGISTRY", "ghcr.io/catalyst-ocr").replace("$IMAGE_TAG", version.group(1))
        for target, name in re.findall(r'^\s*(\w+)\) echo "([^"]+)"', script, re.MULTILINE)
    }
    assert names["production"] == service_image and names["operator"] == operator_image
    compose_dev = (REPO / "docker-compose.dev.yml").read_text(encoding="utf-8")
    assert names["development"] == f"{service_image}-dev" and "}-dev" in compose_dev
    assert "IMAGE_REGISTRY=${IMAGE_REGISTRY:-ghcr.io/catalyst-ocr}" in script, "another registry is one variable"


def test_the_base_image_recipe_matches_the_official_images_contents() -> None:
    script = (SCRIPTS / "build-base-image.sh").read_text(encoding="utf-8")
    packages = re.search(r"^PACKAGES=(\S+)", script, re.MULTILINE)
    assert packages is not None
    assert set(packages.group(1).split(",")) == {
        "python3",
        "python3-venv",
        "python3-pip",
        "python3-dev",
        "ca-certificates",
    }
    assert "--variant=minbase" in script and " bookworm " in script
    assert 'ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"' in script
    assert "dev.catalyst-ocr.base-recipe" in script, "cached by the hash of its recipe"


def test_release_workflow_is_valid_for_github() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_release_workflow_pushes_both_images_multi_arch_with_digests() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert workflow[True]["push"]["tags"], "runs on a tag"  # YAML 1.1 reads the key `on` as True
    job = workflow["jobs"]["images"]
    targets = {entry["target"]: entry["name"] for entry in job["strategy"]["matrix"]["include"]}
    operator_image, service_image = _manifest_images()
    assert f"ghcr.io/catalyst-ocr/{targets['production']}:" in service_image + ":"
    assert f"ghcr.io/catalyst-ocr/{targets['operator']}:" in operator_image + ":"
    build = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("docker/build-push-action"))
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["with"]["push"] is True and build["with"]["target"] == "${{ matrix.target }}"
    assert any("steps.build.outputs.digest" in str(step.get("env", {})) for step in job["steps"])
    release = workflow["jobs"]["release"]
    assert any("gh release create" in str(step.get("run", "")) for step in release["steps"])
