"""How reliable each annotator is: agreement with the consensus and with each other annotator, exact and
weighted the way mir_eval scores keys, with the counts behind each figure. Torch- and mir_eval-free."""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

from ml.keys import RELATION_SCORES, Key, key_relation

from ..models import Annotation, Track

# mir_eval 0.8's key score per relation (ml.metrics.key_metrics uses the same through mir_eval).
RELATION_SCORE = RELATION_SCORES

Label = tuple[str, int | None]  # (label, key index): ("key", 7) or ("no_key", None)


def label_score(reference: Label, estimate: Label) -> float:
    """The weighted score of `estimate` against `reference`; a no-key label scores 1 only for itself."""
    if reference[1] is None or estimate[1] is None:
        return 1.0 if reference == estimate else 0.0
    return RELATION_SCORE[key_relation(Key.from_index(reference[1]), Key.from_index(estimate[1]))]


class _Tally:
    def __init__(self) -> None:
        self.n = 0
        self.exact = 0
        self.weighted = 0.0

    def add(self, exact: bool, weighted: float) -> None:
        self.n += 1
        self.exact += int(exact)
        self.weighted += weighted

    def figures(self) -> dict:
        if not self.n:
            return {"n": 0, "exact": None, "weighted": None}
        return {
            "n": self.n,
            "exact": round(self.exact / self.n, 4),
            "weighted": round(self.weighted / self.n, 4),
        }


def annotator_agreement() -> list[dict]:
    """Per annotator: labels given; agreement with the consensus on tracks where it rests on more than
    their own label (two or more annotators, or a reviewer's decision); and agreement with each other
    annotator on the tracks both labeled (the weighted score averaged over both directions, since
    mir_eval's counts only a fifth above)."""
    opinions: dict[int, dict[str, Label]] = defaultdict(dict)
    labels_given: dict[str, int] = defaultdict(int)
    rows = Annotation.objects.filter(source=Annotation.Source.ANNOTATOR, annotator__isnull=False).values_list(
        "track_id", "annotator__username", "label", "key_index"
    )
    for track_id, username, label, key_index in rows.iterator(chunk_size=5000):
        opinions[track_id][username] = (label, key_index)
        labels_given[username] += 1
    reviewed = set(
        Annotation.objects.filter(source=Annotation.Source.REVIEW).values_list("track_id", flat=True)
    )
    consensus = {
        track_id: (label, key)
        for track_id, label, key in Track.objects.exclude(consensus_label="")
        .filter(id__in=list(opinions))
        .values_list("id", "consensus_label", "consensus_key")
    }
    with_consensus: dict[str, _Tally] = defaultdict(_Tally)
    pairs: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    for track_id, by_user in opinions.items():
        agreed = consensus.get(track_id)
        if agreed is not None and (len(by_user) > 1 or track_id in reviewed):
            for username, given in by_user.items():
                with_consensus[username].add(given == agreed, label_score(agreed, given))
        for (first, a), (second, b) in combinations(sorted(by_user.items()), 2):
            score = (label_score(a, b) + label_score(b, a)) / 2
            pairs[(first, second)].add(a == b, score)
    report = []
    for username in sorted(labels_given):
        others = []
        for (first, second), tally in sorted(pairs.items()):
            if username in (first, second):
                others.append({"with": second if username == first else first, **tally.figures()})
        report.append(
            {
                "username": username,
                "labels": labels_given[username],
                "with_consensus": with_consensus[username].figures(),
                "with_others": sorted(others, key=lambda row: row["with"]),
            }
        )
    return report
