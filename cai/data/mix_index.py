"""``cai mix`` over an index of the input rows, so memory stays flat in the number of pairs.

The list steps of :mod:`cai.data.mix` (``dedupe``, ``compare``, ``apply_caps``,
``apply_human_policy``, ``stratified_split``) hold every pair. :class:`MixIndex` holds, per row
read, only what those steps decide on: which input and which row of it, its source, a 128-bit
digest of its pair id and one of the response its label prefers (about 40 bytes a row, in numpy
arrays). The steps run on those arrays, with the same seeded random calls as the list steps (so
the same rows are capped, split and written in the same order); the rows themselves are read
again from the inputs when the splits and the disagreement report are written, each row going
straight to its file. The report's rows (both labels of a pair the AI and a human disagree on)
wait in a temporary SQLite file, not in memory.

A digest stands for a pair id or a preferred response: two different ids share one with
probability about n²/2¹²⁹ (no practical chance at any size cai will see).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import sqlite3
import tempfile
from array import array
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cai.core.errors import CaiError
from cai.data.pairs import PreferencePair, read_pairs

TIE = b"\0" * 16  # the preferred-response digest of a tie (p_chosen 0.5)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _void(buf: bytearray) -> np.ndarray:
    """16-byte digests as one comparable numpy value each."""
    return np.frombuffer(bytes(buf), dtype="V16") if buf else np.empty(0, dtype="V16")


@contextlib.contextmanager
def _quiet_reader():
    """Re-reading an input: its skipped rows were logged on the first read already."""
    logger = logging.getLogger("cai.data.pairs")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class MixIndex:
    """Every input row as (input, row, source, id digest, preferred digest); the mix steps as arrays.

    Build with :meth:`read`, then call :meth:`dedupe`, :meth:`compare`, :meth:`apply_caps`,
    :meth:`apply_human_policy` and :meth:`split` in that order (what each returns matches the list
    step of the same name in :mod:`cai.data.mix`), then :meth:`rows` to stream the kept pairs.
    """

    def __init__(self, inputs: list, human_sources: set[str], skip_invalid: bool):
        self.inputs = inputs
        self.human_sources = human_sources
        self.skip_invalid = skip_invalid
        self.sources: list[str] = []  # source names by code, in order of first appearance
        self.info: list[dict] = []
        self.read_counts: Counter = Counter()
        self.n = 0

    # ------------------------------------------------------------ reading

    def read(self, preferred) -> None:
        """Read every input once, keeping the index columns; ``preferred(pair)`` is the canonical
        text of the response its label prefers (None for a tie)."""
        from cai.data.pairs import resolve_pairs_path

        inp_col, src_col = array("H"), array("I")
        ids, prefs = bytearray(), bytearray()
        codes: dict[str, int] = {}
        for k, inp in enumerate(self.inputs):
            try:
                resolve_pairs_path(inp.path)
            except CaiError as exc:
                raise CaiError(f"{inp.flag}: {exc.message}") from None
            counts: dict = {}  # invalid, empty_response (dropped), prompt_repeated (stripped, kept)
            rows = 0
            for p in read_pairs(inp.path, source=inp.source, skip_invalid=self.skip_invalid, counts=counts):
                code = codes.get(p.source)
                if code is None:
                    code = codes[p.source] = len(self.sources)
                    self.sources.append(p.source)
                inp_col.append(k)
                src_col.append(code)
                ids += _digest(p.id)
                pref = preferred(p)
                prefs += TIE if pref is None else _digest(pref)
                rows += 1
            self.info.append({"source": inp.source, "path": inp.path, "rows": rows, **counts})
            self.read_counts.update(counts)
        self.n = len(src_col)
        self.input = np.frombuffer(inp_col, dtype=np.uint16).copy() if self.n else np.empty(0, np.uint16)
        self.source = np.frombuffer(src_col, dtype=np.uint32).copy() if self.n else np.empty(0, np.uint32)
        self.ids, self.pref = _void(ids), _void(prefs)
        ids_v = self.ids
        del ids, prefs
        # Pair ids as small integers (equal ids, equal codes), numbered in order of first appearance.
        uniq, first, inverse = np.unique(ids_v, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        self.pid = rank[inverse.reshape(-1)].astype(np.int64)
        self.n_ids = len(uniq)
        del uniq, first, inverse, ids_v
        human_codes = [i for i, s in enumerate(self.sources) if s in self.human_sources]
        self.human = np.isin(self.source, human_codes)
        self.keep = np.ones(self.n, dtype=bool)

    def counts_by_source(self, mask: np.ndarray | None = None) -> Counter:
        """Rows per source name (of the rows in ``mask``)."""
        src = self.source if mask is None else self.source[mask]
        got = np.bincount(src, minlength=len(self.sources))
        return Counter({self.sources[i]: int(c) for i, c in enumerate(got) if c})

    # ------------------------------------------------------------ the steps

    def dedupe(self) -> tuple[Counter, Counter]:
        """First row per (source, id); returns duplicates and conflicting duplicates per source."""
        key = self.pid * max(1, len(self.sources)) + self.source
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        first_of = first[inverse.reshape(-1)]
        is_dup = first_of != np.arange(self.n)
        conflict = is_dup & (self.pref != self.pref[first_of])
        self.keep &= ~is_dup
        return self.counts_by_source(is_dup), self.counts_by_source(conflict)

    def compare(self) -> tuple[np.ndarray, dict]:
        """AI rows (kept) against the first kept human row of the same pair id.

        Returns the report as an array of (AI row, human row, kind code) in row order, kinds
        :data:`KINDS` (agree left out), and counts per kind, overall and per AI source.
        """
        rows = np.flatnonzero(self.keep)
        human_rows = rows[self.human[rows]]
        first_human = np.full(self.n_ids, -1, dtype=np.int64)
        # the first kept human row of each id: write in reverse so the first one wins
        first_human[self.pid[human_rows[::-1]]] = human_rows[::-1]
        ai_rows = rows[~self.human[rows]]
        h = first_human[self.pid[ai_rows]]
        has = h >= 0
        ai_rows, h = ai_rows[has], h[has]
        ai_pref, h_pref = self.pref[ai_rows], self.pref[h]
        tie = np.frombuffer(TIE, dtype="V16")[0]
        kind = np.where(ai_pref == h_pref, 0, np.where(h_pref == tie, 2, np.where(ai_pref == tie, 3, 1)))
        counts: dict[str, Any] = dict.fromkeys(("overlap", "agree", "disagree", "human-tie", "ai-tie"), 0)
        counts["overlap"] = int(len(ai_rows))
        by_source: dict[str, Counter] = {}
        for code, name in enumerate(KINDS_ALL):
            sel = kind == code
            counts[name] = int(sel.sum())
            for s, c in self.counts_by_source_rows(ai_rows[sel]).items():
                by_source.setdefault(s, Counter())[name] = c
        # per source in order of the source's first AI row in the overlap (as the list step builds it)
        codes, first_at = np.unique(self.source[ai_rows], return_index=True)
        names = [self.sources[int(c)] for c in codes[np.argsort(first_at)]]
        counts["by_source"] = {s: {k: by_source[s][k] for k in KINDS_ALL if by_source[s][k]} for s in names}
        report = np.stack([ai_rows, h, kind]).T[kind != 0] if len(ai_rows) else np.empty((0, 3), dtype=np.int64)
        return report, counts

    def counts_by_source_rows(self, rows: np.ndarray) -> Counter:
        """Rows per source name of the row numbers ``rows``."""
        got = np.bincount(self.source[rows], minlength=len(self.sources))
        return Counter({self.sources[i]: int(c) for i, c in enumerate(got) if c})

    def apply_caps(self, caps: dict[str, int], seed: int) -> Counter:
        """At most ``caps[source]`` kept rows per source: the same seeded sample as :func:`cai.data.mix.apply_caps`."""
        dropped = Counter()
        rows = np.flatnonzero(self.keep)
        for code, source in enumerate(self.sources):
            cap = caps.get(source)
            if cap is None:
                continue
            idx = rows[self.source[rows] == code]
            if len(idx) <= cap:
                continue
            # random.sample picks positions from its length alone: the same picks as on the list of rows
            picked = np.fromiter(random.Random(f"{seed}:cap:{source}").sample(range(len(idx)), cap),
                                 dtype=np.int64, count=cap)
            chosen = np.zeros(len(idx), dtype=bool)
            chosen[picked] = True
            self.keep[idx[~chosen]] = False
            dropped[source] = len(idx) - cap
        return dropped

    def apply_human_policy(self, policy: str) -> Counter:
        """``replace``: drop kept AI rows whose pair id has a kept human row; ``join``: keep all."""
        if policy == "join":
            return Counter()
        labeled = np.zeros(self.n_ids, dtype=bool)
        labeled[self.pid[self.keep & self.human]] = True
        replaced = self.keep & ~self.human & labeled[self.pid]
        self.keep &= ~replaced
        return self.counts_by_source(replaced)

    def split(self, test_size: float, seed: int) -> list[str]:
        """Seeded train/test split of pair ids, stratified by source (as :func:`cai.data.mix.stratified_split`);
        sets :attr:`test` per id; returns the sources too small for a test row."""
        rows = np.flatnonzero(self.keep)
        self.test = np.zeros(self.n_ids, dtype=bool)
        if test_size <= 0 or not len(rows):
            return []
        pids = self.pid[rows]
        # ids in order of first appearance among the kept rows; each id's first row and first human row
        first_row = np.full(self.n_ids, -1, dtype=np.int64)
        first_row[pids[::-1]] = rows[::-1]
        human_rows = rows[self.human[rows]]
        first_human = np.full(self.n_ids, -1, dtype=np.int64)
        first_human[self.pid[human_rows[::-1]]] = human_rows[::-1]
        present = np.flatnonzero(first_row >= 0)
        ordered = present[np.argsort(first_row[present], kind="stable")]
        stratum_row = np.where(first_human[ordered] >= 0, first_human[ordered], first_row[ordered])
        stratum = self.source[stratum_row]
        too_small = []
        # strata in order of their first id (as the list step's dict)
        _, first_at = np.unique(stratum, return_index=True)
        for code in stratum[np.sort(first_at)]:
            ids = ordered[stratum == code]
            n_test = min(int(len(ids) * test_size + 0.5), len(ids) - 1)
            name = self.sources[int(code)]
            if n_test <= 0:
                too_small.append(name)
                continue
            perm = np.arange(len(ids))
            random.Random(f"{seed}:split:{name}").shuffle(perm)  # the same swaps as on the list of ids
            self.test[ids[perm[:n_test]]] = True
        return too_small

    # ------------------------------------------------------------ reading the rows again

    def rows(self) -> Iterator[tuple[int, PreferencePair]]:
        """(row number, pair) for every row read, in order, read again from the inputs; a row that
        is not the one indexed (an input changed during the mix) is an error."""
        g = 0
        with _quiet_reader():
            for k, inp in enumerate(self.inputs):
                for p in read_pairs(inp.path, source=inp.source, skip_invalid=self.skip_invalid, counts={}):
                    if (g >= self.n or self.input[g] != k or self.sources[self.source[g]] != p.source
                            or self.ids[g].tobytes() != _digest(p.id)):
                        raise CaiError(f"{inp.flag}: the input changed while it was being mixed; run cai mix again")
                    yield g, p
                    g += 1
        if g != self.n:
            raise CaiError("an input changed while it was being mixed (fewer rows on the second read); "
                           "run cai mix again")


KINDS_ALL = ("agree", "disagree", "human-tie", "ai-tie")


class ReportRows:
    """The disagreement report's labels, parked in a temporary SQLite file until written in order."""

    def __init__(self, report: np.ndarray):
        self.report = report
        self._wanted = np.unique(report[:, :2]) if len(report) else np.empty(0, dtype=np.int64)
        self._tmp = tempfile.TemporaryDirectory(prefix="cai-mix-")
        self.db = sqlite3.connect(Path(self._tmp.name) / "report.sqlite")
        self.db.execute("CREATE TABLE label (row INTEGER PRIMARY KEY, data TEXT)")

    def want(self, g: int) -> bool:
        """Whether row ``g`` is one side of a reported pair."""
        i = np.searchsorted(self._wanted, g)
        return i < len(self._wanted) and self._wanted[i] == g

    def keep(self, g: int, data: dict) -> None:
        """Park row ``g``'s ``{"id", "prompt", "label"}``."""
        self.db.execute("INSERT INTO label VALUES (?, ?)", (g, json.dumps(data, ensure_ascii=False)))

    def lines(self) -> Iterator[str]:
        """The report's JSONL lines, in the report's order."""
        kinds = KINDS_ALL
        for ai, h, kind in self.report:
            a = json.loads(self.db.execute("SELECT data FROM label WHERE row = ?", (int(ai),)).fetchone()[0])
            hd = json.loads(self.db.execute("SELECT data FROM label WHERE row = ?", (int(h),)).fetchone()[0])
            yield json.dumps({"id": a.pop("id"), "kind": kinds[kind], "prompt": a.pop("prompt"), "ai": a["label"],
                              "human": hd["label"]}, ensure_ascii=False) + "\n"

    def close(self) -> None:
        """Drop the temporary file."""
        self.db.close()
        self._tmp.cleanup()
