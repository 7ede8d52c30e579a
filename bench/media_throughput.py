"""Media upload and download MB/s next to a raw encrypted file copy, in one run.

Starts ``parley serve --insecure-http`` on a free port with a temporary data dir, then:

- raw: the same chunked AES-256-GCM encryption (``server/media/blobcrypt.py``) of a file into
  a file, and its decryption, in this process: the floor the server's work sits on;
- upload: ``POST /api/v1/media`` of the file (kind ``file``, its limit raised to fit with
  ``PARLEY_MAX_FILE_BYTES``; streamed from disk by the SDK);
- download: ``GET /media/{id}`` of it, read to the end.

Also prints the server's peak RSS during the transfers.

    .venv/bin/python bench/media_throughput.py            # 100 MB
    .venv/bin/python bench/media_throughput.py --mb 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client.sdk import RestClient  # noqa: E402
from server.crypto import KeyRing  # noqa: E402
from server.media.blobcrypt import CHUNK, BlobReader, BlobWriter  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def raw_copy(src: Path, work: Path) -> tuple[float, float]:
    ring = KeyRing.generate()
    mid = "m" + "0" * 32
    t = time.perf_counter()
    with BlobWriter(work / "raw.enc", ring, mid, "original") as w, src.open("rb") as fh:
        while piece := fh.read(256 * 1024):
            w.write(piece)
    enc = time.perf_counter() - t
    t = time.perf_counter()
    with (
        BlobReader(work / "raw.enc", ring, mid, "original") as r,
        (work / "raw.out").open("wb") as out,
    ):
        while piece := r.read_chunk(CHUNK):
            out.write(piece)
    dec = time.perf_counter() - t
    return enc, dec


async def transfers(url: str, api_key: str, src: Path, pid: int) -> tuple[float, float, float]:
    peak = rss_mb(pid)
    async with RestClient(url, api_key=api_key, timeout=300) as admin:
        await admin.create_user("bench", "Bench")
        token = await admin.issue_token("bench")
    stop = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    async with RestClient(url, token=token, timeout=300) as rest:
        t = time.perf_counter()
        up = await rest.upload(src, kind="file")
        upload = time.perf_counter() - t
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        t = time.perf_counter()
        size = 0
        async with http.stream("GET", up["url"]) as r:
            async for piece in r.aiter_raw(1 << 20):
                size += len(piece)
        download = time.perf_counter() - t
    assert size == src.stat().st_size, (size, src.stat().st_size)
    stop.set()
    await watcher
    return upload, download, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "payload.bin"
        with src.open("wb") as fh:
            for _ in range(args.mb):
                fh.write(os.urandom(1 << 20))
        enc, dec = raw_copy(src, work)
        port, key = free_port(), "bench-key"
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--insecure-http", "--host",
             "127.0.0.1", "--port", str(port), "--data-dir", str(work / "data"), "--api-key",
             key, "--log-level", "warning", "--rate-limit", "0"],
            cwd=ROOT,
            env={**os.environ, "PARLEY_MAX_FILE_BYTES": str((args.mb + 1) << 20)},
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start")
                time.sleep(0.1)
            idle = rss_mb(proc.pid)
            upload, download, peak = asyncio.run(transfers(url, key, src, proc.pid))
        finally:
            proc.terminate()
            proc.wait(10)
    mb = args.mb
    print(f"{mb} MB file, chunk {CHUNK // 1024} KiB, {os.cpu_count()} cores")
    print(f"  raw encrypt (file -> encrypted file):  {mb / enc:7.0f} MB/s")
    print(f"  raw decrypt (encrypted file -> file):  {mb / dec:7.0f} MB/s")
    print(f"  upload   POST /api/v1/media (HTTP):    {mb / upload:7.0f} MB/s")
    print(f"  download GET /media/{{id}}  (HTTP):      {mb / download:7.0f} MB/s")
    print(f"  server RSS: {idle:.0f} MB idle, {peak:.0f} MB peak during the transfers")


if __name__ == "__main__":
    main()
