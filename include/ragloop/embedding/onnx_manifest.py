"""The exported ONNX model as the runtime sees it: where it lives in the cache, what its folder
holds, and its manifest checked at every load. No torch, no export code: `ragloop.local.onnx_model` (the
export, run in the export environment) writes what this module reads, and imports it, never the
other way round.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ragloop.errors import RagloopError

MODEL_NAME = "all-MiniLM-L6-v2"
# The model reads at most 256 word pieces, [CLS] and [SEP] included (sentence_bert_config.json).
MAX_SEQ_LENGTH = 256
QUANTIZATIONS = ("int8", "fp32")
DEFAULT_QUANTIZATION = "int8"
# Bump when the export's graph or quantisation recipe changes: a new folder, never a stale one.
EXPORT_VERSION = 1
OPSET = 17
MODEL_DIR_ENV = "RAGLOOP_ONNX_MODEL_DIR"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"


class OnnxModelError(RagloopError):
    """The ONNX model is missing, corrupt or does not match what is asked; the message says how to fix it."""


def bundled_tokenizer_path() -> Path:
    """all-MiniLM-L6-v2's tokenizer.json, shipped inside ragloop (Apache-2.0, like the model):
    token counting and chunking need no model and no export."""
    return Path(__file__).resolve().parents[1] / "data" / MODEL_NAME / TOKENIZER_FILE


def check_quantization(quantization: str) -> str:
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {quantization!r}")
    return quantization


def models_root() -> Path:
    from ragloop.paths import cache_dir

    return Path(os.environ.get(MODEL_DIR_ENV) or cache_dir() / "models")


def model_dir(quantization: str = DEFAULT_QUANTIZATION) -> Path:
    return models_root() / f"{MODEL_NAME}-onnx-{check_quantization(quantization)}-v{EXPORT_VERSION}"


def export_env() -> Path:
    """The environment the Makefile exports in (`uv sync --only-group export`): torch lives here only."""
    from ragloop.paths import cache_dir

    return cache_dir() / "export-env"


def export_command(quantization: str = DEFAULT_QUANTIZATION) -> str:
    """What a person runs to export the model (said in every error about a missing model)."""
    extra = "" if quantization == DEFAULT_QUANTIZATION else f" ONNX_QUANTIZATION={quantization}"
    return (
        f"`make onnx-model{extra}` in the ragloop project (or, in an environment with the `export` group: "
        f"`python -m ragloop.local.onnx_model export --quantization {quantization}`)"
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path, quantization: str = DEFAULT_QUANTIZATION) -> dict:
    """The manifest of an exported model folder, after checking the folder is whole: the model
    file's sha256 and the quantisation must match what the export wrote."""
    manifest_path = folder / MANIFEST_FILE
    if not folder.is_dir() or not manifest_path.is_file():
        raise OnnxModelError(
            f"The ONNX model of {MODEL_NAME} ({quantization}) is not exported yet (no {manifest_path}). "
            f"Export it once with {export_command(quantization)}."
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:
        raise OnnxModelError(f"{manifest_path} is unreadable ({err}); delete {folder} and export again.") from None
    for name in (MODEL_FILE, TOKENIZER_FILE):
        if not (folder / name).is_file():
            raise OnnxModelError(f"{folder / name} is missing; delete {folder} and export again.")
    actual = sha256_file(folder / MODEL_FILE)
    if actual != manifest.get("model_sha256"):
        raise OnnxModelError(
            f"{folder / MODEL_FILE} is corrupt: its sha256 is {actual[:12]}…, the export wrote "
            f"{str(manifest.get('model_sha256'))[:12]}…. Delete {folder} and export again."
        )
    if sha256_file(folder / TOKENIZER_FILE) != manifest.get("tokenizer_sha256"):
        raise OnnxModelError(f"{folder / TOKENIZER_FILE} does not match its manifest; delete {folder} and export again.")
    if manifest.get("quantization") != quantization or manifest.get("model") != MODEL_NAME:
        raise OnnxModelError(
            f"{folder} holds {manifest.get('model')} ({manifest.get('quantization')}), not {MODEL_NAME} ({quantization}); "
            f"delete it and export again with {export_command(quantization)}."
        )
    return manifest
