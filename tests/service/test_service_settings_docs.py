"""`.env.example` and the README settings table say exactly what `settings.SETTINGS_TABLE` says."""

from __future__ import annotations

import re
from pathlib import Path

from ocr_service.options import PREPROCESS_STEPS
from ocr_service.settings import SETTINGS_TABLE, Settings


def test_env_example_lists_every_setting_with_its_default_and_a_comment(repo_root: Path) -> None:
    lines = (repo_root / ".env.example").read_text(encoding="utf-8").splitlines()
    assignments = [(index, line) for index, line in enumerate(lines) if line and not line.startswith("#")]
    found = []
    for index, line in assignments:
        name, separator, value = line.partition("=")
        assert separator, f"not NAME=value: {line!r}"
        assert lines[index - 1].startswith("# ") and len(lines[index - 1]) > 4, f"{name} has no comment above it"
        found.append((name, value))
    assert found == [(spec.env.value, spec.default) for spec in SETTINGS_TABLE]


def test_env_example_defaults_parse_to_the_settings_defaults(repo_root: Path, tmp_path: Path) -> None:
    text = (repo_root / ".env.example").read_text(encoding="utf-8")
    environ = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    environ["OCR_DATA_DIR"] = str(tmp_path)
    assert Settings.from_env(environ) == Settings(data_dir=str(tmp_path))


def test_readme_settings_table_matches(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section:service", 1)[1].split("<!-- section:", 1)[0]
    rows = re.findall(r"^\| `(OCR_[A-Z_]+)` \| (.*?) \| (.*) \|$", section, flags=re.MULTILINE)
    expected = [
        (spec.env.value, f"`{spec.default}`" if spec.default else "(empty)", spec.doc) for spec in SETTINGS_TABLE
    ]
    assert rows == expected


def test_docs_name_every_preprocessing_switch(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    service_section = readme.split("<!-- section:service", 1)[1].split("<!-- section:", 1)[0]
    api = (repo_root / "docs" / "api.md").read_text(encoding="utf-8")
    for step in PREPROCESS_STEPS:
        assert f"`{step}`" in service_section, f"README service section does not mention {step}"
        assert f"`{step}`" in api, f"docs/api.md does not mention {step}"
