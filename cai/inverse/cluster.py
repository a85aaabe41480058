"""Deduplicating proposed principles: cluster them, keep one representative per cluster.

ICAI (Findeis et al. 2024) clusters OpenAI embeddings with k-means. Here the vectors are TF-IDF
of each principle's words after "Select the response that" (scikit-learn; the lead-in every
proposal shares would otherwise dominate), or mean-pooled hidden states of a local model when
one is given (``embedding_model``, any folder transformers loads). The clustering is
agglomerative with cosine distance and average linkage, cut at ``max_clusters`` clusters (or
fewer when there are fewer distinct texts). A cluster's representative is the member closest to
the cluster's mean vector, ties going to the text proposed most often; each representative keeps
its cluster's size (how many proposals it stands for) and members.

Needs scikit-learn (``pip install 'cai-constitution[inverse]'``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from cai.core.errors import CaiError
from cai.inverse.proposals import LEAD


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise CaiError("clustering proposals needs scikit-learn: pip install 'cai-constitution[inverse]'") from None


def tfidf_vectors(texts: Sequence[str]) -> np.ndarray:
    """L2-normalized TF-IDF rows (words, English stop words left out) of the texts without the lead-in."""
    _sklearn()
    from sklearn.feature_extraction.text import TfidfVectorizer

    bodies = [t.removeprefix(LEAD).strip(" .") or t for t in texts]
    return TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(bodies).toarray()


def model_vectors(texts: Sequence[str], model: str, batch_size: int = 32) -> np.ndarray:
    """Mean-pooled last hidden states of a local transformers model, L2-normalized."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    net = AutoModel.from_pretrained(model).eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tok(list(texts[start:start + batch_size]), return_tensors="pt", padding=True, truncation=True,
                      max_length=128)
            hidden = net(**enc).last_hidden_state  # (B, T, H)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            rows.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float().numpy())
    x = np.concatenate(rows)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cluster(proposals: Sequence[str], max_clusters: int, *, embedding_model: str | None = None) -> list[dict]:
    """One ``{"text", "size", "members"}`` per cluster of the proposals (repeats included: they
    count towards size), largest cluster first."""
    counts = Counter(proposals)
    texts = sorted(counts)
    if not texts:
        return []
    if len(texts) == 1:
        labels = np.zeros(1, dtype=int)
        x = np.ones((1, 1))
    else:
        x = model_vectors(texts, embedding_model) if embedding_model else tfidf_vectors(texts)
        _sklearn()
        from sklearn.cluster import AgglomerativeClustering

        k = min(max_clusters, len(texts))
        labels = (AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(x)
                  if k < len(texts) else np.arange(len(texts)))
    out = []
    for label in sorted(set(labels.tolist())):
        idx = [i for i in range(len(texts)) if labels[i] == label]
        centre = x[idx].mean(axis=0)
        best = max(idx, key=lambda i: (float(x[i] @ centre), counts[texts[i]], texts[i]))
        members = sorted((texts[i] for i in idx), key=lambda t: (-counts[t], t))
        out.append({"text": texts[best], "size": sum(counts[t] for t in members), "members": members})
    return sorted(out, key=lambda c: (-c["size"], c["text"]))
