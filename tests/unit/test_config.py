"""sources.yaml: the bundled file loads; mistakes name the file, the line and the key."""

from pathlib import Path

import pytest

from ragloop.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path, text):
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return path


def test_bundled_config_loads():
    config = load_config(REPO / "include" / "sources.yaml")
    assert config.collection == "RagloopChunks" and config.embedder == "local"
    assert config.chunking == {"max_tokens": 256, "overlap_tokens": 32}
    assert config.source_ids() == ["samples-docs", "samples-slack", "samples-github"]


def test_unknown_top_level_key_names_line(tmp_path):
    path = write(tmp_path, "collection: Docs\nembeder: local\n")
    with pytest.raises(ConfigError, match=r"sources.yaml:2: unknown key 'embeder'"):
        load_config(path)


def test_duplicate_source_ids(tmp_path):
    path = write(tmp_path, f"sources:\n  - {{id: a, type: docs, path: {tmp_path}}}\n  - id: a\n    type: docs\n")
    with pytest.raises(ConfigError, match=r":3: duplicate source id 'a' \(first at line 2\)"):
        load_config(path)


def test_the_written_back_answers_source_id_is_reserved(tmp_path):
    path = write(tmp_path, f"sources:\n  - {{id: qa, type: docs, path: {tmp_path}}}\n")
    with pytest.raises(ConfigError, match=r":2: source id 'qa' is reserved for written-back answers"):
        load_config(path)
    assert load_config(write(tmp_path, "chunking: {max_tokens: 100}\n")).chunking_for("qa") == {"max_tokens": 100, "overlap_tokens": 32}


def test_unknown_source_type(tmp_path):
    path = write(tmp_path, "sources:\n  - {id: a, type: confluence}\n")
    with pytest.raises(ConfigError, match=r":2: source 'a' has unknown type 'confluence'"):
        load_config(path)


def test_bad_collection_and_embedder(tmp_path):
    with pytest.raises(ConfigError, match=r":1: collection 'my-docs'"):
        load_config(write(tmp_path, "collection: my-docs\n"))
    with pytest.raises(ConfigError, match=r":1: embedder must be"):
        load_config(write(tmp_path, "embedder: cohere\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_source_keys_are_checked_with_their_line(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    text = f"sources:\n  - id: a\n    type: docs\n    path: {docs}\n    colour: blue\n"
    with pytest.raises(ConfigError, match=r":5: source 'a': unknown key 'colour' for type 'docs'"):
        load_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match=r":4: .*nowhere"):
        load_config(write(tmp_path, "sources:\n  - id: a\n    type: docs\n    path: nowhere\n"))
    with pytest.raises(ConfigError, match=r":5: .*include"):
        load_config(write(tmp_path, f"sources:\n  - id: a\n    type: docs\n    path: {docs}\n    include: '*.md'\n"))
    with pytest.raises(ConfigError, match=r":5: .*max_tokens"):
        load_config(write(tmp_path, f"sources:\n  - id: a\n    type: docs\n    path: {docs}\n    chunking: {{max_tokens: big}}\n"))
    with pytest.raises(ConfigError, match=r":3: source id 'a b'"):
        load_config(write(tmp_path, f"sources:\n  - type: docs\n    id: a b\n    path: {docs}\n"))


def test_ingest_settings(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    config = load_config(write(tmp_path, f"index_batch_chunks: 500\nstaging: file:///tmp/x\nsources:\n"
                                          f"  - {{id: a, type: docs, path: {docs}, chunking: {{max_tokens: 128}}}}\n"))
    assert config.index_batch_chunks == 500 and config.staging == "file:///tmp/x"
    assert config.chunking_for("a") == {"max_tokens": 128, "overlap_tokens": 32}
    with pytest.raises(ConfigError, match=r":1: index_batch_chunks"):
        load_config(write(tmp_path, "index_batch_chunks: 0\n"))
    assert load_config(write(tmp_path, "embedder: hash\n")).embedder == "hash"


def test_llm_and_product(tmp_path):
    config = load_config(write(tmp_path, "product: Fernwood\nllm: {connection: my_gateway, model: gpt-test}\n"))
    assert config.product == "Fernwood" and config.llm == {"connection": "my_gateway", "model": "gpt-test", "prices": None}
    priced = load_config(write(tmp_path, "llm: {model: gpt-x, prices: {input: 1, output: 4.5}}\n"))
    assert priced.llm["prices"] == {"input": 1.0, "output": 4.5} and priced.llm["connection"] == "openai_default"
    assert load_config(write(tmp_path, "llm: none\n")).llm is None  # the offline default, said explicitly
    assert load_config(write(tmp_path, "collection: Docs\n")).llm is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("llm: {connection: x, temperature: 0}\n", r":1: unknown llm key 'temperature'"),
        ("llm: {model: 4}\n", r":1: llm.model must be a non-empty string"),
        ("llm: [openai_default]\n", r":1: llm must be none or a mapping"),
        ("collection: Docs\nproduct: ''\n", r":2: product must be a non-empty string"),
        ("llm: {prices: {input: 1}}\n", r":1: llm.prices must be \{input: N, output: N\}"),
        ("llm: {prices: {input: 1, output: -2}}\n", r":1: llm.prices must be"),
    ],
)
def test_bad_llm_and_product_name_the_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_replication_defaults_and_checks(tmp_path):
    default = load_config(write(tmp_path, "collection: A\n")).replication
    assert (default.factor, default.consistency) == (1, "ONE")
    three = load_config(write(tmp_path, "replication: {factor: 3}\n")).replication
    assert (three.factor, three.consistency) == (3, "QUORUM")  # QUORUM by default once replicated
    assert load_config(write(tmp_path, "replication: {factor: 3, consistency: all}\n")).replication.consistency == "ALL"
    with pytest.raises(ConfigError, match=r":1: replication.factor must be a whole number ≥ 1"):
        load_config(write(tmp_path, "replication: {factor: 0}\n"))
    with pytest.raises(ConfigError, match=r"replication\.consistency must be one of ONE, QUORUM, ALL"):
        load_config(write(tmp_path, "replication: {factor: 3, consistency: MOST}\n"))
    with pytest.raises(ConfigError, match="unknown replication key 'copies'"):
        load_config(write(tmp_path, "replication: {copies: 3}\n"))
