"""The local embedder: offline, the right dimension, and it ranks meaning sensibly."""

import json

import pytest

from conftest import run_offline

pytestmark = pytest.mark.integration


def test_local_embedder_offline_dimension_and_similarity():
    result = run_offline(
        """
import json
from ragloop.embedding import LocalEmbedder
e = LocalEmbedder()
texts = [
    "How do I restart the Fernwood server after changing its config?",
    "After editing fernd.toml, restart the fernd service so the change applies.",
    "Our cafeteria serves pumpkin soup on Tuesdays.",
]
vectors = e.embed(texts)
dot = lambda a, b: sum(x * y for x, y in zip(a, b))
print(json.dumps({
    "name": e.name, "dimension": e.dimension, "lengths": [len(v) for v in vectors],
    "similar": dot(vectors[0], vectors[1]), "unrelated": dot(vectors[0], vectors[2]),
    "norm": dot(vectors[0], vectors[0]), "tokens": e.count_tokens(texts[0]), "max": e.max_input_tokens,
}))
"""
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["name"] == "local:all-MiniLM-L6-v2@onnx-int8"
    assert report["dimension"] == 384 and report["lengths"] == [384, 384, 384]
    assert report["similar"] > report["unrelated"] + 0.2
    assert abs(report["norm"] - 1.0) < 1e-3  # normalized: dot product is cosine
    assert 10 < report["tokens"] < report["max"] == 254
