"""The labelled-set builder's ``@teaches`` and ``--add``/``--out`` (trial mixes for issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moderation.training import build_labelled
from moderation.training.datasets import ALL_CATEGORIES, own_set


def test_shipped_sources_rebuild_the_shipped_set_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "labelled.jsonl"
    assert build_labelled.main(["--out", str(out)]) == 0
    assert out.read_bytes() == build_labelled.OUT.read_bytes()


def test_teaches_limits_the_categories_an_added_file_trains(tmp_path: Path) -> None:
    extra = tmp_path / "99_trial.txt"
    extra.write_text(
        "# hard negatives that say nothing about insults\n"
        "@teaches violence,threat\n"
        "@ none\n"
        "we destroyed them in the final, 4-0\n"
        "@ violence\n"
        "tell me where to buy a gun to shoot him tonight\n"
        "@teaches all\n"
        "@ none\n"
        "lovely weather for a picnic today\n",
        "utf-8",
    )
    out = tmp_path / "labelled.jsonl"
    assert build_labelled.main(["--add", str(extra), "--out", str(out)]) == 0
    shipped = build_labelled.OUT.read_text("utf-8").splitlines()
    lines = out.read_text("utf-8").splitlines()
    assert lines[: len(shipped)] == shipped  # the shipped rows first, unchanged
    added = {json.loads(line)["text"]: json.loads(line) for line in lines[len(shipped) :]}
    assert added["we destroyed them in the final, 4-0"]["teaches"] == ["threat", "violence"]
    assert "teaches" not in added["lovely weather for a picnic today"]
    examples = {e.text: e for e in own_set(out)}
    # a row with ``teaches`` is labelled for those categories only, so it trains no other head
    assert examples["we destroyed them in the final, 4-0"].labels == {"threat": 0, "violence": 0}
    assert examples["tell me where to buy a gun to shoot him tonight"].labels == {
        "threat": 0,
        "violence": 1,
    }
    assert set(examples["lovely weather for a picnic today"].labels) == set(ALL_CATEGORIES)


@pytest.mark.parametrize(
    "source",
    [
        "@ violence,violense\nhe hit me\n",  # a misspelt label would train nothing
        "@teaches threat\n@ violence\nhe hit me\n",  # a label the block does not teach
    ],
)
def test_bad_headers_are_refused_with_the_file_named(tmp_path: Path, source: str) -> None:
    extra = tmp_path / "98_bad.txt"
    extra.write_text(source, "utf-8")
    with pytest.raises(ValueError, match=r"98_bad\.txt"):
        build_labelled.build([extra])
