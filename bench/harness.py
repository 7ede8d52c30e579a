"""Shared helpers for the bench scripts: start/stop servers, read a process's CPU and RSS."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
API_KEY = "bench-api-key-0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SERVER_CPU = "0"
GEN_CPU = "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root``, its reaped children and its live descendants (PostgreSQL's
    postmaster and its backends; Redis's threads)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total = 0.0
    try:
        with open(f"/proc/{root}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += (int(fields[13]) + int(fields[14])) / CLK_TCK  # cutime, cstime
    except OSError:
        return 0.0
    stack = [root]
    while stack:
        pid = stack.pop()
        total += proc_cpu_s(pid)
        stack.extend(children.get(pid, ()))
    return total


def proc_rss(pid: int) -> int:
    """Resident set size in bytes, from /proc/<pid>/statm."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except OSError:
        return 0


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return fh.read().strip()


def taskset(cpu: str) -> list[str]:
    """``taskset -c cpu`` when there are enough cores and taskset exists, else nothing."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > int(cpu):
        return ["taskset", "-c", cpu]
    return []


@dataclass
class Server:
    """A server process started for a bench run."""

    label: str
    kind: str  # "bare" or "parley"
    port: int
    proc: subprocess.Popen[bytes]
    data_dir: Path | None = None
    log: Path | None = None
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


#: The local AI text rules of the heads' cascade (``P-AI`` in ``run.py``): the toxicity and
#: scam heads. Left out (``EVERY_AI_TEXT_RULE`` has them): ``platform-circumvention``
#: (sentence similarity, with its own cascade stage since ``similarity_gate``) and
#: ``negative-sentiment`` (VADER, inline but about 0.05-0.1 ms).
AI_RULES: tuple[str, ...] = ("ai-toxicity", "ai-harmful-content", "ai-scam")


#: The local AI text rules a fresh server enables (``moderation.defaults``): the review and
#: flag rules of the toxicity heads.
DEFAULT_AI_RULES: tuple[str, ...] = (
    "ai-toxicity",
    "ai-harmful-content",
    "ai-toxicity-flag",
    "ai-harmful-content-flag",
)

#: Every local AI text rule: the default AI rules, ``ai-scam``, ``platform-circumvention``
#: (sentence similarity, with its own cascade stage) and ``negative-sentiment`` (VADER).
EVERY_AI_TEXT_RULE: tuple[str, ...] = (
    *DEFAULT_AI_RULES,
    "ai-scam",
    "platform-circumvention",
    "negative-sentiment",
)

#: What ``set_moderation`` can set up: ``keywords`` (the default rules without the AI rules:
#: the keyword, spam and known-bad-image rules), ``ai`` (the default rules plus ``ai-scam``,
#: cascade off), ``ai-cascade`` (the same, cascade on), ``ai-all-cascade`` (every local AI
#: text rule, ``EVERY_AI_TEXT_RULE``, cascade on), ``default`` (a fresh server as it ships:
#: the default AI rules and the cascade on).
MODERATION_PROFILES = ("keywords", "ai", "ai-cascade", "ai-all-cascade", "default")


def set_moderation(base_url: str, profile: str) -> str:
    """Set the server's rules to ``profile`` (``MODERATION_PROFILES``) through the API; says
    what changed. Works on older checkouts too (rules they do not have are skipped)."""
    if profile == "default":
        return "as shipped"
    if profile == "keywords":
        return f"disabled {', '.join(set_rules_enabled(base_url, DEFAULT_AI_RULES, False)) or '-'}"
    enabled = set_rules_enabled(
        base_url, EVERY_AI_TEXT_RULE if profile == "ai-all-cascade" else AI_RULES
    )
    cascade = profile in ("ai-cascade", "ai-all-cascade")
    api_call(base_url, "PUT", "/moderation/settings", {"aiCascade": cascade})
    time.sleep(3)  # the models load in the background once a rule needs them
    return f"enabled {', '.join(enabled) or '-'}, aiCascade {str(cascade).lower()}"


def api_call(base_url: str, method: str, path: str, body: object = None) -> Any:
    """One call to the server's REST API with the bench's API key; the decoded JSON."""
    import json

    req = urllib.request.Request(
        f"{base_url}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def set_rules_enabled(base_url: str, ids: tuple[str, ...], enabled: bool = True) -> list[str]:
    """Enable (or disable) the stored rules ``ids`` through the rules API; the ids changed."""

    def call(method: str, path: str, body: object = None) -> Any:
        return api_call(base_url, method, path, body)

    listed = call("GET", "/moderation/rules")
    rules = listed["rules"] if isinstance(listed, dict) else listed
    done = []
    for rule in rules:
        if rule["id"] in ids and rule.get("enabled") != enabled:
            body = {
                k: v
                for k, v in rule.items()
                if k not in ("revision", "createdAt", "updatedAt", "updatedBy", "createdBy")
            }
            body["enabled"] = enabled
            call("PUT", f"/moderation/rules/{rule['id']}", body)
            done.append(str(rule["id"]))
    return done


def start_server(
    kind: str,
    *,
    label: str | None = None,
    sync: str = "NORMAL",
    moderation: bool = True,
    extra: list[str] | None = None,
    timeout: float = 60.0,
    root: Path = ROOT,
    data_dir: Path | None = None,
) -> Server:
    """Start the bare relay or Parley on a free port, pinned to the server core; wait for /healthz.

    ``root`` is the checkout Parley runs from (another commit's worktree, for a before/after
    comparison in one run). ``data_dir``: another server's (one deployment's secrets).
    """
    port = free_port()
    if kind == "bare":
        cmd = [PY, str(BENCH / "bare_relay.py"), "--port", str(port)]
    else:
        data_dir = data_dir or Path(tempfile.mkdtemp(prefix="parley-bench-"))
        cmd = [
            PY, "-m", "server.cli", "serve", "--insecure-http", "--host", "127.0.0.1",
            "--port", str(port), "--data-dir", str(data_dir), "--api-key", API_KEY,
            "--rate-limit", "0", "--sqlite-synchronous", sync, "--log-level", "warning",
        ]  # fmt: skip
        if not moderation:
            cmd.append("--no-moderation")
    cmd += extra or []
    log = Path(tempfile.mkstemp(prefix=f"bench-{kind}-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            taskset(SERVER_CPU) + cmd,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
    server = Server(label or kind, kind, port, proc, data_dir, log, cmd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{label} exited early:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/healthz", timeout=1) as r:
                if r.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{label} not ready in {timeout} s:\n{log.read_text()[-2000:]}")


def run_load(server: Server, args: list[str], timeout: float = 300) -> dict[str, object]:
    """Run bench/load.py against ``server`` on the generator core; its last JSON line."""
    import json

    cmd = [
        *taskset(GEN_CPU), PY, str(BENCH / "load.py"), "--base-url", server.base_url, "--api-key", API_KEY,
        "--server-pid", str(server.pid), *args,
    ]  # fmt: skip
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"load.py failed ({res.returncode}):\n{res.stderr[-3000:]}")
    if res.stderr.strip():
        print(res.stderr.strip()[-1500:], file=sys.stderr)
    out: dict[str, object] = json.loads(lines[-1])
    return out
