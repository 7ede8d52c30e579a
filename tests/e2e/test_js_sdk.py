"""The TypeScript SDK (client/js) against a real server, with real Node.

Installs the SDK's dev dependencies (``npm ci``, only when ``package-lock.json`` changed since
the last install), builds it with ``tsc`` (and type-checks ``test/types/usage.ts``) and runs its tests with Node's own test runner
(``node --test client/js/test/*.test.mjs``). The tests reach two servers through the
environment: the shared one, and one of their own that this driver restarts when the Node
test asks for it (it writes ``restart-request`` into ``PARLEY_CONTROL_DIR`` and waits for
``restart-done``).

Node >= 18 and npm are required (Debian: ``apt-get install nodejs npm``; ``.ci/run`` and
``make test`` install them). Without them this test fails; it never skips.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, ServerProcess

JS = ROOT / "client" / "js"
STAMP = JS / "node_modules" / ".parley-lock.sha256"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH: the TypeScript SDK's tests need Node >= 18 and npm "
            "(Debian: `sudo apt-get install nodejs npm`; `.ci/run` and `make test` do this)",
            pytrace=False,
        )
    return path


def _run(cmd: list[str], *, timeout: float, what: str, **kw: object) -> None:
    proc = subprocess.run(
        cmd,
        cwd=JS,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
        **kw,  # type: ignore[call-overload]
    )
    if proc.returncode != 0:
        pytest.fail(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stdout}")


@pytest.fixture(scope="session")
def built_sdk() -> Path:
    """client/js installed (``npm ci``, cached in client/js/node_modules) and built (tsc)."""
    node, npm = _tool("node"), _tool("npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(re.match(r"v(\d+)", version.stdout.strip()).group(1))  # type: ignore[union-attr]
    if major < 18:
        pytest.fail(f"Node {version.stdout.strip()} is too old: the SDK needs Node >= 18")
    lock = hashlib.sha256((JS / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != lock:
        _run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"],
            timeout=300,
            what="npm ci (client/js)",
        )
        STAMP.write_text(lock + "\n")
    tsc = str(JS / "node_modules" / "typescript" / "bin" / "tsc")
    _run([node, tsc, "-p", str(JS)], timeout=180, what="tsc (client/js)")
    # The README's usage, type-checked under strict as an app would write it.
    _run(
        [node, tsc, "-p", str(JS / "test" / "types")],
        timeout=180,
        what="tsc (client/js/test/types)",
    )
    assert (JS / "dist" / "index.js").exists()
    return JS


@pytest.mark.timeout(420)
def test_js_sdk(
    built_sdk: Path,
    server: ServerProcess,
    server_factory: Callable[..., ServerProcess],
    tmp_path: Path,
) -> None:
    restartable = server_factory("--rate-limit", "0")
    control = tmp_path / "control"
    control.mkdir()
    env = {
        **os.environ,
        "PARLEY_URL": server.url,
        "PARLEY_API_KEY": server.api_key,
        "PARLEY_RESTART_URL": restartable.url,
        "PARLEY_RESTART_API_KEY": restartable.api_key,
        "PARLEY_CONTROL_DIR": str(control),
        "NO_COLOR": "1",
    }
    tests = sorted(str(p.relative_to(built_sdk)) for p in (built_sdk / "test").glob("*.test.mjs"))
    assert tests, "no client/js/test/*.test.mjs"
    log = tmp_path / "node-test.log"
    restarts = 0
    with log.open("w") as out:
        proc = subprocess.Popen(
            [_tool("node"), "--test", "--test-reporter=tap", *tests],
            cwd=built_sdk,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    pytest.fail(f"node --test ran over 300 s:\n{log.read_text()}")
                request = control / "restart-request"
                if request.exists():
                    request.unlink()
                    restartable.stop()
                    time.sleep(0.3)  # let the clients see the drop and queue sends
                    restartable.start()
                    restarts += 1
                    (control / "restart-done").write_text("done\n")
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log.read_text()
    assert proc.returncode == 0, f"node --test failed (exit {proc.returncode}):\n{output}"
    assert restarts == 1, f"the restart test did not run (restarts: {restarts}):\n{output}"
