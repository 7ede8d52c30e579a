"""Labelled data for training and benchmarking the local AI detectors.

Every set yields ``Example`` rows whose ``labels`` name only the categories that set really
labels (1 positive, 0 negative); other categories are unknown for that row and neither train
nor score a head. Splits are fixed: the set's own split where it has one (EDOS, ConvAbuse),
otherwise a hash of the text (20 % test), so training never sees a test row and every run
gets the same split. The project's own set (``data/parley_labelled.jsonl``) labels every
category; the public sets live outside the package (``../shared/data/moderation`` by
default, or ``$PARLEY_MODERATION_DATA``) and are only read by the training script and the
quality bench.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from moderation.rules import TOXICITY_CATEGORIES

SCAM_HEAD_CATEGORIES: tuple[str, ...] = ("scam", "phishing", "advance_fee", "crypto", "fake_offer")
ALL_CATEGORIES: tuple[str, ...] = TOXICITY_CATEGORIES + SCAM_HEAD_CATEGORIES

OWN_SET = Path(__file__).resolve().parent / "data" / "parley_labelled.jsonl"


def public_dir() -> Path:
    env = os.environ.get("PARLEY_MODERATION_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "moderation"


@dataclass(frozen=True)
class Example:
    text: str
    labels: dict[str, int]
    source: str
    split: str  # "train" or "test"
    extra: dict[str, str] = field(default_factory=dict)


def hash_split(source: str, text: str, test_percent: int = 20) -> str:
    h = int(hashlib.sha1(f"{source}\x00{text}".encode()).hexdigest(), 16)
    return "test" if h % 100 < test_percent else "train"


def own_set(path: Path = OWN_SET) -> Iterator[Example]:
    """The own labelled set (``build_labelled``). A row with ``teaches`` is labelled for those
    categories only (as a public set's row says nothing about categories it does not label)."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            pos = set(row["labels"])
            labels = {c: int(c in pos) for c in row.get("teaches", ALL_CATEGORIES)}
            yield Example(row["text"], labels, "parley", row["split"])


def davidson(d: Path) -> Iterator[Example]:
    with (d / "davidson_labeled_data.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            cls = int(row["class"])
            text = row["tweet"]
            labels = {"toxicity": int(cls in (0, 1)), "identity_attack": int(cls == 0)}
            yield Example(text, labels, "davidson", hash_split("davidson", text))


def edos(d: Path) -> Iterator[Example]:
    with (d / "edos_labelled_aggregated.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            sexist = int(row["label_sexist"] == "sexist")
            threat = int(row["label_category"].startswith("1."))
            labels = {"toxicity": sexist, "identity_attack": sexist, "threat": threat}
            split = "test" if row["split"] == "test" else "train"
            yield Example(row["text"], labels, "edos", split)


def implicit_hate(d: Path) -> Iterator[Example]:
    with (d / "implicit_hate_stg1_posts.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            text = row["post"].strip().strip('"').strip()
            hate = int(row["class"] != "not_hate")
            labels = {"toxicity": hate, "identity_attack": hate}
            yield Example(text, labels, "implicit_hate", hash_split("implicit_hate", text))
    with (d / "implicit_hate_stg2_posts.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            text = row["post"].strip().strip('"').strip()
            labels = {"threat": int(row["implicit_class"] == "threatening")}
            yield Example(text, labels, "implicit_hate_threat", hash_split("implicit_hate", text))


def _flag(row: dict[str, str], key: str) -> int | None:
    value = (row.get(key) or "").strip()
    if not value:
        return None
    try:
        return int(float(value.split(",")[0]))
    except ValueError:
        return None


def convabuse(d: Path) -> Iterator[Example]:
    identity = ("ableist", "homophobic", "racist", "sexist", "transphobic")
    for name, split in (("train", "train"), ("valid", "train"), ("test", "test")):
        with (d / f"convabuse_{name}.csv").open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                votes = {"abuse": 0, "sexual": 0, "identity": 0, "individual": 0, "n": 0}
                for a in range(1, 9):
                    p = f"Annotator{a}_"
                    not_abuse = _flag(row, p + "is_abuse.1")
                    if not_abuse is None:
                        continue
                    votes["n"] += 1
                    abusive = any(_flag(row, p + f"is_abuse.{k}") == 1 for k in (-1, -2, -3))
                    votes["abuse"] += int(abusive)
                    votes["sexual"] += int(_flag(row, p + "sex_harassment") == 1)
                    votes["identity"] += int(any(_flag(row, p + t) == 1 for t in identity))
                    votes["individual"] += int(
                        abusive
                        and (
                            _flag(row, p + "target.individual") == 1
                            or _flag(row, p + "intellectual") == 1
                        )
                    )
                if not votes["n"] or not row["user"].strip():
                    continue
                half = votes["n"] / 2
                labels = {
                    "toxicity": int(votes["abuse"] > half),
                    "sexual": int(votes["sexual"] > half),
                    "identity_attack": int(votes["identity"] > half),
                    "insult": int(votes["individual"] > half),
                }
                yield Example(row["user"], labels, "convabuse", split)


def toxigen(d: Path) -> Iterator[Example]:
    seen: set[str] = set()
    with (d / "toxigen_seed_sentences.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            text = row["text"]
            if text in seen:
                continue
            seen.add(text)
            hate = int(row["label"] == "hate")
            labels = {"toxicity": hate, "identity_attack": hate}
            yield Example(text, labels, "toxigen", hash_split("toxigen", text))


def sms_spam(d: Path) -> Iterator[Example]:
    seen: set[str] = set()
    with (d / "sms_spam_collection.tsv").open(encoding="utf-8", errors="replace") as f:
        next(f)
        for line in f:
            label, _, text = line.rstrip("\n").partition("\t")
            if not text or text in seen:
                continue
            seen.add(text)
            yield Example(text, {"scam": int(label == "spam")}, "sms_spam", hash_split("sms", text))


def youtube_spam(d: Path) -> Iterator[Example]:
    for path in sorted(d.glob("youtube_spam_0*.csv")):
        with path.open(encoding="utf-8-sig") as f:
            lines = [line for line in f if line.strip()]
        for row in csv.DictReader(lines):
            text = row["CONTENT"]
            yield Example(
                text, {"scam": int(row["CLASS"] == "1")}, "youtube_spam", hash_split("yt", text)
            )


def jigsaw(d: Path) -> Iterator[Example]:
    keys = {
        "toxicity": "toxic",
        "severe_toxicity": "severe_toxic",
        "obscene": "obscene",
        "threat": "threat",
        "insult": "insult",
        "identity_attack": "identity_hate",
    }
    with (d / "jigsaw_ibm_test_examples.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            labels = {c: int(row[k]) for c, k in keys.items()}
            yield Example(row["comment_text"], labels, "jigsaw101", "test")


def xstest(d: Path) -> Iterator[Example]:
    """XSTest: ``unsafe`` prompts are positives of the ``any_harm`` pseudo-category."""
    with (d / "xstest_prompts.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            labels = {"any_harm": int(row["label"] == "unsafe")}
            yield Example(row["prompt"], labels, "xstest", "test", {"type": row["type"]})


def simple_safety(d: Path) -> Iterator[Example]:
    """SimpleSafetyTests: positives only; harm area mapped to a category."""
    area = {
        "Suicide, Self-Harm, and Eating Disorders": "self_harm",
        "Physical harm and Violence": "violence",
        "Scams and fraud": "scam",
    }
    with (d / "simplesafetytests.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            cat = area.get(row["harm_area"].strip())
            if cat is None:
                continue
            yield Example(row["prompts_final"], {cat: 1}, "simplesafetytests", "test")


#: Public sets used to train (their train split) and to benchmark (their test split).
TRAINING_SETS = (davidson, edos, implicit_hate, convabuse, toxigen, sms_spam, youtube_spam)
#: Public sets used only to benchmark.
EVAL_ONLY_SETS = (jigsaw, xstest, simple_safety)
