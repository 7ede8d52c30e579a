"""A verdict judged on the send path travels in a moderation job (``server/redis_jobs.py``)
and comes back the same, so the process that takes the job applies it without judging again."""

from __future__ import annotations

import orjson

from moderation.types import Action, Detection, Match, Verdict, VerdictStatus
from server.redis_jobs import verdict_from_json, verdict_to_json


def test_verdict_round_trips_through_a_job() -> None:
    verdict = Verdict(
        status=VerdictStatus.DISAPPROVED,
        matches=(
            Match("r1", "Rule one", 3, "said «x»", 0.93, (Action.BLOCK, Action.KICK)),
            Match("r2", "Rule two", 1, "flagged", 0.5, (Action.FLAG,)),
        ),
        actions=(Action.BLOCK, Action.KICK, Action.FLAG),
        detections=(Detection("keywords", "profanity", 1.0, "x"),),
    )
    wire = orjson.dumps(verdict_to_json(verdict))
    assert verdict_from_json(orjson.loads(wire)) == verdict
    clean = Verdict(VerdictStatus.APPROVED, (), (), ())
    assert verdict_from_json(orjson.loads(orjson.dumps(verdict_to_json(clean)))) == clean
