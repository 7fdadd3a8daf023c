"""Docs gaps: recorded questions grouped into topics, the topics the docs serve worst first.

The core is pure: `find_topics(runs, vectors)` takes runs as the run store returns them
(`RunStore.list_runs()` dicts: question, answer, sources, vote_summary, grades) and one vector per
question, and returns `Topic`s sorted by need. `ragloop gaps` reads the runs and embeds the
questions with the configured embedder; `bench/gaps.py` measures the clustering on labelled
questions (README, "Docs gaps").

How it works:

1. **Grouping.** The question vectors are L2-normalised and grouped by scikit-learn's
   agglomerative clustering with average linkage on cosine distance, cut at a distance threshold
   (`DEFAULT_THRESHOLD`), and below any merge that would make a topic hold more than
   `DEFAULT_MAX_TOPIC_SHARE` of the questions. The number of topics follows from the data, never
   from the caller. Method, threshold and cap were chosen by `bench/gaps.py` against KMeans with k
   picked by silhouette and HDBSCAN, on tune halves of public questions and of
   `tests/data/gap_questions.jsonl`, and reported on the other halves (docs/evidence.md).
   Questions left alone in a group of fewer than `min_topic_size` are gathered in one
   "not grouped" row (`topic_id` 0) that is always listed last: it is not a topic.
2. **How each run went.** A run is *voted down* when, counting each user's latest vote (the run's
   `vote_summary`), it has more down votes than up votes; *not helpful* when its latest
   `helpfulness` grade has `passed` False; *bad* when either holds; *unanswered* when the answer
   is empty or cites no source (retrieval found nothing to stand on).
3. **Need.** `need = size × share of the topic's runs that were bad or unanswered`, i.e. the
   number of askers the docs failed on that topic. A count rather than a share, so that one bad
   answer to a lone question does not outrank a topic that failed twenty people; a count of
   failures rather than of questions, so that a busy topic the docs already serve well (many
   questions, good answers) sinks. Ties go to the higher failure share, then the larger topic.
4. **Describing a topic.** `terms`: the words that set the topic apart: the share of the topic's
   questions that use a word times its inverse frequency over the topics (English stop words
   removed); `label`: the question
   closest to the topic's centroid; `examples`: the questions closest to the centroid;
   `top_sources`: the documents its answers cited most (doc id, title, url, count).

Everything is deterministic: agglomerative clustering and HDBSCAN have no randomness, KMeans
runs with a fixed seed, and every ordering has a total tie-break.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from ragloop.errors import RagloopError

# Chosen by bench/gaps.py on tune halves and reported on the other halves (bench/results/gaps.json,
# docs/evidence.md): real questions (921 Stack Overflow `airflow` threads, public) and the labelled
# set written here. A fixed cut does not carry over between streams: at 0.8 with no cap, 97.9 % of
# the public report half fell in one topic. The cap on a topic's share of the questions keeps
# every topic small on real streams (largest 12.9 % on the public report half); on the labelled
# report half ARI is 0.585 (0.580 before). Thresholds 0.85-1.0 tied under the cap; the lowest is
# kept, so that unrelated questions of a small store (below CAP_FLOOR) stay apart.
DEFAULT_METHOD = "agglomerative"
DEFAULT_THRESHOLD = 0.85
DEFAULT_MAX_TOPIC_SHARE: float | None = 0.15
# The cap never splits a topic of this many questions or fewer: in a small store (tens of
# questions) a share would break up a real topic. Below the sizes measured, so it moved no figure.
CAP_FLOOR = 5
DEFAULT_MIN_TOPIC_SIZE = 2
SEED = 0
NOT_GROUPED = 0  # topic_id of the row that gathers questions no topic took


class GapsError(RagloopError, ValueError):
    """Input the docs-gaps report cannot work with (no runs, mismatched vectors, bad options)."""


# --- clustering ---------------------------------------------------------------------------------


def normalize(vectors: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), so Euclidean geometry is cosine's."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise GapsError(f"expected a non-empty matrix of question vectors, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise GapsError("the question vectors hold NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def cluster_agglomerative(
    vectors: np.ndarray, threshold: float = DEFAULT_THRESHOLD, max_topic_share: float | None = None
) -> np.ndarray:
    """Average-linkage agglomerative clustering on cosine distance, cut at `threshold` (0..2).

    `max_topic_share`: also cut below the first merge that would make a group larger than this
    share of the questions (and than `CAP_FLOOR`). The merge heights of average linkage never decrease, so this is the
    highest cut at or under `threshold` whose largest group fits. Why: a fixed threshold does
    not carry over between question streams (bench/gaps.py: at 0.8, 98 % of real Stack Overflow
    questions fell in one group, where the tidy labelled set split well)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    count = len(vectors)
    if count == 1:
        return np.zeros(1, dtype=int)
    if np.allclose(vectors, 0):  # cosine distance is undefined for zero rows: one group
        return np.zeros(count, dtype=int)
    tree = linkage(vectors, method="average", metric="cosine")
    # fcluster merges at distances <= t; a threshold is exclusive (as in scikit-learn): orthogonal
    # questions (distance 1.0) stay apart at a threshold of 1.0.
    cut = float(np.nextafter(threshold, 0.0))
    if max_topic_share is not None:
        largest_allowed = max(CAP_FLOOR, int(max_topic_share * count))
        heights = tree[:, 2]
        too_big = np.flatnonzero(tree[:, 3] > largest_allowed)
        if too_big.size and heights[too_big[0]] <= threshold:
            # Just below the offending merge: the highest earlier merge height (0: all apart).
            below = heights[heights < heights[too_big[0]]]
            cut = float(below.max()) if below.size else 0.0
    return fcluster(tree, t=cut, criterion="distance") - 1


def cluster_kmeans_silhouette(vectors: np.ndarray, k_max: int = 20) -> np.ndarray:
    """KMeans for every k in 2..k_max (fixed seed), keeping the k with the best silhouette."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(vectors)
    if n < 3:
        return np.zeros(n, dtype=int)
    best: tuple[float, np.ndarray] | None = None
    for k in range(2, min(k_max, n - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=10, random_state=SEED).fit_predict(vectors)
        score = silhouette_score(vectors, labels, metric="cosine")
        if best is None or score > best[0]:
            best = (score, labels)
    assert best is not None  # n >= 3, so k = 2 was tried
    return best[1]


def cluster_hdbscan(vectors: np.ndarray, min_cluster_size: int = 5) -> np.ndarray:
    """HDBSCAN on the unit vectors (Euclidean on unit vectors ranks like cosine). Noise is -1."""
    from sklearn.cluster import HDBSCAN

    if len(vectors) < 2:
        return np.full(len(vectors), -1, dtype=int)
    return HDBSCAN(min_cluster_size=min_cluster_size, min_samples=1, copy=True).fit_predict(vectors)


def cluster(vectors: np.ndarray, method: str = DEFAULT_METHOD, **options: Any) -> np.ndarray:
    """Cluster labels for unit vectors; -1 means "in no cluster" (HDBSCAN's noise)."""
    methods: dict[str, Callable[..., np.ndarray]] = {
        "agglomerative": cluster_agglomerative,
        "kmeans": cluster_kmeans_silhouette,
        "hdbscan": cluster_hdbscan,
    }
    if method not in methods:
        raise GapsError(f"unknown clustering method {method!r}; one of {', '.join(sorted(methods))}")
    return np.asarray(methods[method](vectors, **options), dtype=int)


# --- how a run went -----------------------------------------------------------------------------


def latest_grade(run: Mapping[str, Any], criterion: str) -> dict | None:
    """The run's latest grade of `criterion` (the run store lists grades oldest first)."""
    latest = None
    for grade in run.get("grades") or []:
        if grade.get("criterion") == criterion:
            latest = grade
    return latest


def run_outcome(run: Mapping[str, Any]) -> dict[str, bool]:
    """{voted_down, not_helpful, bad, unanswered} for one run dict of the run store."""
    votes = run.get("vote_summary") or {}
    voted_down = int(votes.get("down", 0)) > int(votes.get("up", 0))
    helpfulness = latest_grade(run, "helpfulness")
    not_helpful = helpfulness is not None and helpfulness.get("passed") is False
    unanswered = not (run.get("answer") or "").strip() or not run.get("sources")
    return {"voted_down": voted_down, "not_helpful": not_helpful, "bad": voted_down or not_helpful, "unanswered": unanswered}


# --- topics -------------------------------------------------------------------------------------


@dataclass
class Topic:
    topic_id: int  # 1 = most in need; 0 = the "not grouped" row
    size: int
    label: str  # the question closest to the centroid
    terms: list[str]  # words most of its questions use and other topics do not
    need: int  # runs that were bad or unanswered (size × failure share)
    bad_share: float  # voted down or graded not helpful
    voted_down_share: float
    not_helpful_share: float
    unanswered_share: float
    examples: list[str]  # closest to the centroid first
    top_sources: list[dict] = field(default_factory=list)  # {doc_id, title, url, count}
    run_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _distinctive_terms(questions_per_topic: list[list[str]], count: int) -> list[list[str]]:
    """Each topic's words that most of its questions use and other topics do not: the share of the
    topic's questions containing the word, times its inverse frequency over the topics. Why a
    share and not TF-IDF over the topic's text joined: on real questions with code and logs in
    them, the joined text's top words were rare tokens of one or two questions (bench/gaps.py:
    36 % of the grouped public questions held one of their topic's words; docs/evidence.md)."""
    from sklearn.feature_extraction.text import CountVectorizer

    if not questions_per_topic:
        return []
    try:
        vectorizer = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9_.-]+\b", binary=True)
        matrix = vectorizer.fit_transform([q for questions in questions_per_topic for q in questions]).tocsr()
    except ValueError:  # nothing but stop words
        return [[] for _ in questions_per_topic]
    words = vectorizer.get_feature_names_out()
    shares, start = [], 0
    for questions in questions_per_topic:
        shares.append(np.asarray(matrix[start : start + len(questions)].mean(axis=0)).ravel())
        start += len(questions)
    share_matrix = np.vstack(shares)
    topics_using = (share_matrix > 0).sum(axis=0)
    idf = np.log((1 + len(questions_per_topic)) / (1 + topics_using)) + 1
    out = []
    for share in share_matrix:
        scores = share * idf
        order = sorted(np.flatnonzero(scores), key=lambda i: (-scores[i], words[i]))
        out.append([str(words[i]) for i in order[:count]])
    return out


def _top_sources(runs: Iterable[Mapping[str, Any]], count: int) -> list[dict]:
    cited: Counter[str] = Counter()
    meta: dict[str, dict] = {}
    for run in runs:
        for doc_id in dict.fromkeys(s.get("doc_id") for s in run.get("sources") or [] if s.get("doc_id")):
            cited[doc_id] += 1  # a document once per run, however many of its chunks were cited
        for source in run.get("sources") or []:
            if source.get("doc_id") and source["doc_id"] not in meta:
                meta[source["doc_id"]] = {"title": source.get("title", ""), "url": source.get("url", "")}
    ranked = sorted(cited.items(), key=lambda item: (-item[1], item[0]))[:count]
    return [{"doc_id": doc_id, **meta[doc_id], "count": n} for doc_id, n in ranked]


def find_topics(
    runs: Sequence[Mapping[str, Any]],
    vectors: Sequence[Sequence[float]] | np.ndarray,
    *,
    method: str = DEFAULT_METHOD,
    min_topic_size: int = DEFAULT_MIN_TOPIC_SIZE,
    examples: int = 3,
    sources: int = 3,
    terms: int = 4,
    **options: Any,
) -> list[Topic]:
    """Topics of the runs' questions, most in need of documentation first (see the module doc).

    `vectors[i]` is the embedding of `runs[i]["question"]`. `options` go to the clustering
    (`threshold` for agglomerative). Groups smaller than `min_topic_size` (and HDBSCAN's noise)
    are gathered into one last row with `topic_id` 0."""
    if not runs:
        raise GapsError("no runs to group")
    matrix = normalize(vectors)
    if len(matrix) != len(runs):
        raise GapsError(f"{len(runs)} runs but {len(matrix)} question vectors")
    if min_topic_size < 1:
        raise GapsError(f"min_topic_size must be at least 1, got {min_topic_size}")
    if method == "agglomerative" and "threshold" in options and not 0 < options["threshold"] < 2:
        raise GapsError(f"the cosine distance threshold must be between 0 and 2, got {options['threshold']}")
    share = options.get("max_topic_share")
    if method == "agglomerative" and share is not None and not 0 < share <= 1:
        raise GapsError(f"max_topic_share must be above 0 and at most 1, got {share}")
    if method == "agglomerative":
        options.setdefault("max_topic_share", DEFAULT_MAX_TOPIC_SHARE)
    labels = cluster(matrix, method, **options)

    members: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        members.setdefault(int(label), []).append(index)
    groups = [m for label, m in members.items() if label != -1 and len(m) >= min_topic_size]
    leftovers = sorted(i for label, m in members.items() if label == -1 or len(m) < min_topic_size for i in m)

    outcomes = [run_outcome(run) for run in runs]
    all_groups = groups + ([leftovers] if leftovers else [])
    topic_terms = _distinctive_terms([[runs[i]["question"] for i in g] for g in all_groups], terms)

    topics: list[Topic] = []
    for group, group_terms in zip(all_groups, topic_terms, strict=False):
        centroid = matrix[group].mean(axis=0)
        # Closest to the centroid first; ties by position, so the order is total.
        by_closeness = sorted(group, key=lambda i: (-float(matrix[i] @ centroid), i))
        size = len(group)
        bad = sum(outcomes[i]["bad"] for i in group)
        failed = sum(outcomes[i]["bad"] or outcomes[i]["unanswered"] for i in group)
        seen: set[str] = set()
        example_questions = []
        for i in by_closeness:
            text = " ".join(runs[i]["question"].split())
            if text.lower() not in seen:
                seen.add(text.lower())
                example_questions.append(text)
            if len(example_questions) == examples:
                break
        topics.append(
            Topic(
                topic_id=-1,
                size=size,
                label=example_questions[0],
                terms=group_terms,
                need=failed,
                bad_share=bad / size,
                voted_down_share=sum(outcomes[i]["voted_down"] for i in group) / size,
                not_helpful_share=sum(outcomes[i]["not_helpful"] for i in group) / size,
                unanswered_share=sum(outcomes[i]["unanswered"] for i in group) / size,
                examples=example_questions,
                top_sources=_top_sources((runs[i] for i in group), sources),
                run_ids=[str(runs[i].get("run_id", i)) for i in by_closeness],
            )
        )
    grouped = topics[: len(groups)]
    grouped.sort(key=lambda t: (-t.need, -(t.need / t.size), -t.size, t.label))
    for number, topic in enumerate(grouped, 1):
        topic.topic_id = number
    if leftovers:
        topics[-1].topic_id = NOT_GROUPED
        topics[-1].label = f"(not grouped: {len(leftovers)} question{'s' if len(leftovers) > 1 else ''} unlike any other)"
        grouped.append(topics[-1])
    return grouped


def question_vectors(
    embedder, runs: Sequence[Mapping[str, Any]], batch_size: int = 256, progress: Callable[[str], None] | None = None
) -> np.ndarray:
    """The runs' questions embedded with `embedder` (anything with `.embed(texts)`), in batches."""
    from ragloop.progress import progress_bar

    questions = [" ".join(run["question"].split()) for run in runs]
    vectors: list[list[float]] = []
    with progress_bar(len(questions), "embedding questions", "question") as bar:
        for start in range(0, len(questions), batch_size):
            batch = questions[start : start + batch_size]
            vectors.extend(embedder.embed(batch))
            bar.update(len(batch))
            if progress:
                progress(f"Embedded {min(start + batch_size, len(questions))}/{len(questions)} questions")
    return np.asarray(vectors, dtype=np.float64)


# --- output -------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "rank",
    "topic_id",
    "label",
    "terms",
    "size",
    "need",
    "bad_share",
    "voted_down_share",
    "not_helpful_share",
    "unanswered_share",
    "examples",
    "top_sources",
]


def _cell(value: str) -> str:
    """A text cell a spreadsheet shows as text: users' questions may start with = + - @."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def topics_csv(topics: Sequence[Topic]) -> str:
    """One row per topic, in need order; lists joined with " | ", shares as fractions 0..1."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, topic in enumerate(topics, 1):
        writer.writerow(
            [
                rank,
                topic.topic_id,
                _cell(topic.label),
                " ".join(topic.terms),
                topic.size,
                topic.need,
                f"{topic.bad_share:.3f}",
                f"{topic.voted_down_share:.3f}",
                f"{topic.not_helpful_share:.3f}",
                f"{topic.unanswered_share:.3f}",
                _cell(" | ".join(topic.examples)),
                _cell(" | ".join(f"{s['doc_id']} ({s['count']})" for s in topic.top_sources)),
            ]
        )
    return out.getvalue()


def topics_text(topics: Sequence[Topic], width: int = 100) -> str:
    """The table `ragloop gaps` prints: one block per topic, most in need first."""
    if not topics:
        return "No topics."
    lines = [f"{'#':>3}  {'need':>4}  {'size':>4}  {'bad':>4}  {'unans':>5}  topic"]
    for topic in topics:
        number = "-" if topic.topic_id == NOT_GROUPED else str(topic.topic_id)
        label = topic.label if len(topic.label) <= width else topic.label[: width - 3] + "..."
        lines.append(
            f"{number:>3}  {topic.need:>4}  {topic.size:>4}  {topic.bad_share:>4.0%}  {topic.unanswered_share:>5.0%}  {label}"
        )
        if topic.terms:
            lines.append(f"{'':>28}terms:   {', '.join(topic.terms)}")
        for example in topic.examples[1:]:
            lines.append(f"{'':>28}also:    {example[:width]}")
        if topic.top_sources:
            lines.append(f"{'':>28}cited:   " + ", ".join(f"{s['doc_id']} ({s['count']})" for s in topic.top_sources))
    return "\n".join(lines)
