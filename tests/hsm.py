"""A real PKCS#11 token for tests: Debian's SoftHSM2, one token store per test session.

`softhsm_token(dir)` writes a softhsm2.conf under `dir`, points SOFTHSM2_CONF at it (this process and the
CLI subprocesses it starts) and initialises a token with `softhsm2-util --init-token --free`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MODULE_PATHS = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")


@dataclass(frozen=True)
class SoftHsm:
    module: str
    conf: Path
    label: str
    pin: str
    so_pin: str


def softhsm_module() -> str:
    for p in MODULE_PATHS:
        if Path(p).is_file():
            return str(Path(p).resolve())  # python-pkcs11 loads one module once a process, by one path
    raise AssertionError("libsofthsm2.so not found (apt-get install softhsm2)")


def softhsm_token(base: Path, label: str = "depository") -> SoftHsm:
    assert shutil.which("softhsm2-util"), "softhsm2-util missing (apt-get install softhsm2)"
    tokens = base / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
                    "slots.removable = false\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin, so_pin = secrets.token_hex(4), secrets.token_hex(4)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
                   check=True, capture_output=True, timeout=60)
    return SoftHsm(softhsm_module(), conf, label, pin, so_pin)
