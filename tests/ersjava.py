"""The independent RFC 4998 verifier: tests/java/ErsVerify.java on Debian's Bouncy Castle, compiled once.

`scripts/test` installs `libbcpkix-java` (bcprov, bcpkix, bcutil in /usr/share/java) and a JDK; without
them these tests fail (they do not skip: the independent check is the point).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

JAVA_SRC = Path(__file__).resolve().parent / "java" / "ErsVerify.java"
BC_JARS = [Path("/usr/share/java") / f"{n}.jar" for n in ("bcprov", "bcpkix", "bcutil")]


def classpath(out_dir: Path) -> str:
    return ":".join([*(str(j) for j in BC_JARS), str(out_dir)])


def compile_verifier(out_dir: Path) -> str:
    """Compile ErsVerify.java into out_dir; returns the classpath to run it with."""
    missing = [str(j) for j in BC_JARS if not j.is_file()]
    assert not missing, f"Bouncy Castle jars missing (apt-get install libbcpkix-java): {missing}"
    assert shutil.which("javac"), "javac missing (apt-get install default-jdk-headless)"
    cp = classpath(out_dir)
    subprocess.run(["javac", "-cp", cp, "-d", str(out_dir), str(JAVA_SRC)], check=True, capture_output=True,
                   timeout=300)
    return cp


def bc_verify(cp: str, record: Path, data: Path, *cas: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["java", "-cp", cp, "ErsVerify", str(record), str(data), *map(str, cas)],
                          capture_output=True, text=True, timeout=120, check=False)
