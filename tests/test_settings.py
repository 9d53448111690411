"""One settings module: every MNISTSERVE_* variable the code reads is listed there and in the README."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mnistserve import settings
from mnistserve.settings import PREFIX, VARIABLES, Deploy, Settings, Suite, variables_markdown

REPO = Path(__file__).resolve().parents[1]
CODE = ("mnistserve", "training", "serving", "testkit", "benchmarks", "tests")
# What reads variables outside Python: shell scripts, the Makefile, CI, the Docker template and the stack files.
OTHER_READERS = ("Makefile", ".ci/run", "bentofile.yaml", "benchmarks/*.sh", "deploy/**/*")


def other_readers() -> list[Path]:
    return sorted({p for pattern in OTHER_READERS for p in REPO.glob(pattern) if p.is_file()})


def test_the_readme_table_is_the_settings_modules_list():
    readme = (REPO / "README.md").read_text()
    table = re.search(r"<!-- settings:begin -->\n(.*?)\n<!-- settings:end -->", readme, re.S)
    assert table is not None, "README.md lost its settings table markers"
    assert table.group(1) == variables_markdown()


def test_every_variable_the_code_names_is_documented():
    named = set()
    for folder in CODE:
        for path in (REPO / folder).rglob("*.py"):
            named |= set(re.findall(r"\bMNISTSERVE_[A-Z_]*[A-Z]\b", path.read_text()))
    for path in other_readers():
        named |= set(re.findall(r"\bMNISTSERVE_[A-Z_]*[A-Z]\b", path.read_text()))
    named -= {"MNISTSERVE_"}
    assert named and named <= {v.name for v in VARIABLES}, named - {v.name for v in VARIABLES}


def test_only_the_settings_module_reads_the_environment():
    readers = []
    for folder in CODE:
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            if re.search(r"(environ(\.get)?|getenv)\(?\[?[\"']MNISTSERVE_", text) and path.name != "settings.py":
                readers.append(str(path.relative_to(REPO)))
    assert readers == []


def test_deploy_files_default_to_the_documented_values():
    # `${MNISTSERVE_<NAME>:-default}` in shell and stack files, `MNISTSERVE_<NAME> ?= default` in the Makefile
    documented = {PREFIX + name.upper(): str(field.default) for name, field in Deploy.model_fields.items()}
    found = []
    for path in other_readers():
        text = path.read_text()
        pairs = re.findall(r"\$\{(MNISTSERVE_[A-Z_]+):-([^}]*)\}", text) + re.findall(
            r"^(MNISTSERVE_[A-Z_]+) \?= (.*)$", text, re.M
        )
        found += [(name, value, path.name) for name, value in pairs]
    assert {name for name, _, _ in found} >= {"MNISTSERVE_IMAGE", "MNISTSERVE_LB_IMAGE", "MNISTSERVE_CA_BUNDLE"}
    assert [f for f in found if documented.get(f[0]) != f[1]] == []


def test_an_explicit_mapping_is_read_instead_of_the_environment(monkeypatch):
    monkeypatch.setenv("MNISTSERVE_WORKERS", "7")
    monkeypatch.setenv("MNISTSERVE_REQUIRE_BROWSER", "yes")
    assert Settings.from_env().workers == 7 and Settings.from_env({}).workers == 2
    assert Settings.from_env({"MNISTSERVE_WORKERS": "  "}).workers == 2  # blank = unset
    assert Suite.from_env().require_browser and not Suite.from_env({}).require_browser


def test_paths_follow_their_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("MNISTSERVE_HOME", str(tmp_path))
    monkeypatch.delenv("MNISTSERVE_EXPORTED", raising=False)
    assert settings.runs_dir() == tmp_path / "runs" and settings.exported_dir() == tmp_path / "exported"
    monkeypatch.setenv("MNISTSERVE_EXPORTED", str(tmp_path / "elsewhere"))
    assert settings.exported_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("MNISTSERVE_DATA", raising=False)
    assert settings.data_dir() is None


def test_service_settings_name_the_bad_variable():
    assert Settings.from_env({"MNISTSERVE_ORT_THREADS": "0", "MNISTSERVE_ACCESS_LOG": "off"}).access_log is False
    for env, message in (
        ({"MNISTSERVE_TIMEOUT_S": "0"}, "MNISTSERVE_TIMEOUT_S='0' must be positive"),
        ({"MNISTSERVE_ENABLE_BENCHMARK": "maybe"}, "MNISTSERVE_ENABLE_BENCHMARK='maybe' is not a switch"),
        ({"MNISTSERVE_ORT_THREADS": "-1"}, "MNISTSERVE_ORT_THREADS='-1' must be at least 0"),
        ({"MNISTSERVE_WORKERS": "two"}, "MNISTSERVE_WORKERS='two' is not an integer"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            Settings.from_env(env)
    with pytest.raises(ValueError, match=re.escape("MNISTSERVE_LB_PORT='70000' must be at most 65535")):
        Deploy.from_env({"MNISTSERVE_LB_PORT": "70000"})
    both = "MNISTSERVE_TIMEOUT_S='0' must be positive; MNISTSERVE_JSON_LOGS='2' is not a switch"
    with pytest.raises(ValueError, match=re.escape(both)):
        Settings.from_env({"MNISTSERVE_TIMEOUT_S": "0", "MNISTSERVE_JSON_LOGS": "2"})


def test_the_cli_starts_without_torch():
    # --help and argument errors must not pay for importing torch (seconds); commands import it when they run
    probe = "import sys, mnistserve.cli; print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
    bad = subprocess.run(
        [sys.executable, "-m", "mnistserve", "train", "--profile", "huge"], capture_output=True, text=True, cwd=REPO
    )
    assert bad.returncode == 2 and "huge" in bad.stderr
