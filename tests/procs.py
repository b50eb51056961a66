"""Real processes on 127.0.0.1 for integration tests: `depository serve`, witnesses, the TSA."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(home: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPOSITORY_")}
    env["DEPOSITORY_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    for k, v in settings.items():
        env["DEPOSITORY_" + k.upper()] = v
    return env


def run_cli(args: Sequence[str], env: dict[str, str], *, check: bool = True, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True,
                         timeout=timeout, check=False, cwd=str(REPO))
    if check and out.returncode != 0:
        raise AssertionError(f"depository {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out


class Proc:
    """A background CLI process, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.p = subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, stdout=self._log,
                                  stderr=subprocess.STDOUT, cwd=str(REPO), start_new_session=True)

    def wait_http(self, url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise AssertionError(f"process exited {self.p.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{url} did not answer: {self.log_path.read_text()[-2000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, sig)
        self.p.wait(timeout=30)

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=15)
        self._log.close()

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
