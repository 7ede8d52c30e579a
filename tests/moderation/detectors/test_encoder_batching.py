"""The shared encoder's micro-batcher (``SharedEncoder.embed``): texts that arrive while a
batch is being encoded gather and go as one batch the moment it ends; every caller gets its
own text's vector; a batch that fails fails its callers (each hears the error, none waits
forever) and the next batch is encoded as usual.

The model here is the real one; only the failing batch is made to fail (a model that raises
cannot be had otherwise), and the worker is held on an event to make "while it is busy"
exact instead of timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from moderation.detectors.encoder import MAX_BATCH, SharedEncoder


class Watched(SharedEncoder):
    """The real encoder, recording each batch; ``hold`` keeps the worker in its next batch
    until ``release`` is set; ``fail`` makes the next batch raise."""

    def __init__(self) -> None:
        super().__init__(threads=1)
        self.batches: list[list[str]] = []
        self.hold = False
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = False

    def _encode_raw(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.batches.append(list(texts))
        if self.hold:
            self.hold = False
            self.started.set()
            self.release.wait(30)
        if self.fail:
            self.fail = False
            raise RuntimeError("the model failed on this batch")
        return super()._encode_raw(texts)


@pytest.fixture(scope="module")
def reference() -> SharedEncoder:
    enc = SharedEncoder(threads=1)
    enc.load()
    return enc


def texts(n: int, tag: str) -> list[str]:
    return [f"Wir treffen uns um {i} Uhr im Raum {tag}." for i in range(n)]


async def wait_started(enc: Watched) -> None:
    while not enc.started.is_set():
        await asyncio.sleep(0.001)


async def test_texts_arriving_while_the_worker_is_busy_go_as_one_batch(
    reference: SharedEncoder,
) -> None:
    enc = Watched()
    enc.load()
    enc.hold = True
    first = asyncio.create_task(enc.embed("the first text of the run"))
    await wait_started(enc)  # its batch is in the worker, held there
    later = texts(10, "a")
    waiting = [asyncio.create_task(enc.embed(t)) for t in later[:5]]
    await asyncio.sleep(0.02)  # far beyond the batching delay: no timer sends them alone
    waiting += [asyncio.create_task(enc.embed(t)) for t in later[5:]]
    await asyncio.sleep(0.02)
    assert enc.batches == [["the first text of the run"]]
    enc.release.set()
    vectors = await asyncio.gather(first, *waiting)
    assert enc.batches == [["the first text of the run"], later]
    want = reference.encode(["the first text of the run", *later])
    for got, expected in zip(vectors, want, strict=True):
        assert np.abs(got - expected).max() < 5e-7  # each caller its own text's vector


async def test_the_same_text_twice_in_a_batch_is_encoded_once_for_both() -> None:
    enc = Watched()
    enc.load()
    a, b, c = await asyncio.gather(
        enc.embed("on se voit demain"), enc.embed("bis morgen"), enc.embed("on se voit demain")
    )
    assert enc.batches == [["on se voit demain", "bis morgen"]]
    assert np.array_equal(a, c) and not np.array_equal(a, b)


async def test_a_full_batch_goes_at_once_even_while_the_worker_is_busy() -> None:
    enc = Watched()
    enc.load()
    enc.hold = True
    first = asyncio.create_task(enc.embed("held"))
    await wait_started(enc)
    full = [asyncio.create_task(enc.embed(t)) for t in texts(MAX_BATCH, "b")]
    await asyncio.sleep(0)
    assert len(enc.batches) == 1  # the worker is still held: the full batch is queued
    enc.release.set()
    await asyncio.gather(first, *full)
    assert [len(b) for b in enc.batches] == [1, MAX_BATCH]


async def test_a_failed_batch_fails_its_callers_and_the_next_batch_is_encoded() -> None:
    enc = Watched()
    enc.load()
    enc.hold = True
    enc.fail = True
    first = asyncio.create_task(enc.embed("this batch fails"))
    await wait_started(enc)
    gathered = [asyncio.create_task(enc.embed(t)) for t in texts(5, "c")]
    enc.release.set()
    with pytest.raises(RuntimeError, match="failed on this batch"):
        await first
    # the texts that gathered behind the failed batch are encoded, not lost with it
    vectors = await asyncio.gather(*gathered)
    assert [len(b) for b in enc.batches] == [1, 5]
    assert all(v.shape == (512,) for v in vectors)
    # and the failed text is encoded when asked again (nothing cached from the failure)
    again = await enc.embed("this batch fails")
    assert again.shape == (512,) and enc.batches[-1] == ["this batch fails"]
