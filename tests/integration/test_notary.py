"""The notary against real parties on 127.0.0.1: three witness servers (policy 2 of 3) and our TSA.

In-process mode on SQLite and PostgreSQL; Redis mode with `depository worker` as a subprocess; outages
(witnesses and the TSA stopped and restarted on the same ports) and catch-up. Tokens are checked with
`openssl ts -verify`, cosignatures with evidence.cosignature against each witness's `witness.vkey`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from depository.config import Config, load_config
from depository.log import integrate_all
from depository.models import CheckpointRow, CosignatureRow, TimestampRow, WitnessProgress
from depository.wiring import Services, build_services, init_home
from evidence.cosignature import parse_witness_key, verify_cosignature
from evidence.policy import Policy, verify_checkpoint_with_policy
from notary_bridge.tsa_server import ServerThread, create_app, init_tsa_material, load_core
from notary_bridge.witness import load_witness
from notary_bridge.witness_server import WitnessServerThread
from notary_bridge.witness_server import create_app as witness_app
from tests.conftest import REDIS_URL

ORIGIN = "test.example/log"


@dataclass
class Parties:
    """The TSA and witnesses of one test, restartable on their ports (state and keys in their homes)."""

    root: Path
    log_vkey: str
    tsa: ServerThread | None = None
    tsa_port: int = 0
    witnesses: dict[str, WitnessServerThread | None] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    sm2: tuple[str, ...] = ()

    def start_tsa(self) -> None:
        self.tsa = ServerThread(create_app(load_core(self.root / "home")), port=self.tsa_port).start()
        self.tsa_port = self.tsa.port

    def stop_tsa(self) -> None:
        if self.tsa is not None:
            self.tsa.stop()
            self.tsa = None

    def start_witness(self, name: str) -> None:
        w = load_witness(self.root / name, f"{name}.example/witness", [self.log_vkey], sm2=name in self.sm2)
        srv = WitnessServerThread(witness_app(w), port=self.ports.get(name, 0)).start()
        self.witnesses[name] = srv
        self.ports[name] = srv.port

    def stop_witness(self, name: str) -> None:
        srv = self.witnesses.get(name)
        if srv is not None:
            srv.stop()
            self.witnesses[name] = None

    def vkey(self, name: str, sm2: bool = False) -> str:
        return (self.root / name / ("witness-sm2.vkey" if sm2 else "witness.vkey")).read_text().strip()

    def policy_text(self, k: int = 2) -> str:
        lines = [f"log {self.log_vkey}"]
        members = []
        for name in self.ports:
            lines.append(f"witness {name} {self.vkey(name)} http://127.0.0.1:{self.ports[name]}")
            members.append(name)
            if name in self.sm2:
                lines.append(f"witness {name}-sm2 {self.vkey(name, True)} http://127.0.0.1:{self.ports[name]}")
                members.append(f"{name}-sm2")
        lines += [f"group consortium {k} {' '.join(members)}", "quorum consortium"]
        return "\n".join(lines) + "\n"

    def stop_all(self) -> None:
        self.stop_tsa()
        for name in list(self.witnesses):
            self.stop_witness(name)


def make_setup(tmp_path: Path, db_url: str | None, *, redis: bool = False, sm2: tuple[str, ...] = (),
               k: int = 2) -> tuple[Config, Parties]:
    """A home with log keys and TSA material, three witnesses and a TSA running, and the policy file."""
    home = tmp_path / "home"
    base = load_config(env={}, home=home, database_url=db_url, log_origin=ORIGIN)
    keys = init_home(base)
    init_tsa_material(home, "Notary Test")
    parties = Parties(tmp_path, keys.vkey, sm2=sm2)
    parties.start_tsa()
    for name in ("w1", "w2", "w3"):
        parties.start_witness(name)
    policy = tmp_path / "policy.txt"
    policy.write_text(parties.policy_text(k))
    settings: dict[str, Any] = {
        "log_origin": ORIGIN, "tsa_urls": [parties.tsa.url if parties.tsa else ""],
        "witness_policy_file": str(policy), "notary_retry_max_s": 1.0, "run_integrator": False,
    }
    if db_url:
        settings["database_url"] = db_url
    if redis:
        settings["redis_url"] = REDIS_URL
    (home / "config.toml").write_text("".join(f"{k_} = {_toml(v)}\n" for k_, v in settings.items()))
    return load_config(env={}, home=home), parties


def _toml(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float | int):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def setup(tmp_path: Path, db_url: str) -> Iterator[tuple[Services, Parties]]:
    config, parties = make_setup(tmp_path, db_url)
    services = build_services(config)
    try:
        yield services, parties
    finally:
        services.close()
        parties.stop_all()


def deposit(services: Services, n: int, tag: str = "d") -> int:
    for i in range(n):
        services.log.add(f"{tag}-{i}-{time.monotonic_ns()}", b"evidence-deposit/v1\nid %s-%d\n" % (tag.encode(), i))
    integrate_all(services.log, 1000)
    return services.log.latest_checkpoint().size


def row(services: Services, size: int) -> Any:
    """The checkpoint row of that size (a Core Row: .witnessed, .timestamped)."""
    with services.engine.connect() as conn:
        return conn.execute(select(CheckpointRow).where(CheckpointRow.size == size)).one()


def wait_for(cond: Callable[[], bool], timeout_s: float = 30.0) -> float:
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout_s, "timed out"
        time.sleep(0.02)
    return time.monotonic() - start


def cosigners(services: Services, size: int) -> set[str]:
    with services.engine.connect() as conn:
        cp_id = conn.execute(select(CheckpointRow.id).where(CheckpointRow.size == size)).scalar_one()
        return set(conn.execute(select(CosignatureRow.witness_name)
                                .where(CosignatureRow.checkpoint_id == cp_id)).scalars())


def openssl_verify(tmp_path: Path, body: str, token: bytes, ca_pem: bytes) -> None:
    (tmp_path / "body.txt").write_bytes(body.encode())
    (tmp_path / "token.tsr").write_bytes(token)
    (tmp_path / "tsa-ca.pem").write_bytes(ca_pem)
    r = subprocess.run(["openssl", "ts", "-verify", "-data", str(tmp_path / "body.txt"), "-in",
                        str(tmp_path / "token.tsr"), "-token_in", "-CAfile", str(tmp_path / "tsa-ca.pem")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "Verification: OK" in r.stdout, r.stdout + r.stderr


def test_checkpoint_witnessed_and_timestamped(tmp_path: Path, setup: tuple[Services, Parties]) -> None:
    services, parties = setup
    notary = services.notary
    notary.start()
    t0 = time.monotonic()
    size = deposit(services, 5)
    elapsed = wait_for(lambda: row(services, size).witnessed and row(services, size).timestamped)
    print(f"\ncheckpoint -> witnessed (2 of 3) and timestamped: {elapsed * 1000:.0f} ms "
          f"(incl. integration {time.monotonic() - t0 - elapsed:.3f} s before)")
    wait_for(lambda: cosigners(services, size) == {"w1", "w2", "w3"})

    cp = services.log.latest_checkpoint()
    text = notary.checkpoint_text(cp)
    policy = Policy.from_text(notary.policy_text)
    verify_checkpoint_with_policy(text, policy)
    with services.engine.connect() as conn:
        for name, line in conn.execute(select(CosignatureRow.witness_name, CosignatureRow.line)
                                       .where(CosignatureRow.checkpoint_id == cp.id)):
            assert verify_cosignature(cp.body, line, parse_witness_key(parties.vkey(name))) >= int(
                cp.created_at.timestamp()) - 1
            assert line in text

    token, chain = notary.timestamp_for(cp)
    assert token is not None and chain is not None
    ca_pem = (tmp_path / "home" / "tsa" / "tsa-ca.pem").read_bytes()
    assert chain.count("BEGIN CERTIFICATE") == 2 and chain.rstrip().endswith(ca_pem.decode().rstrip())
    openssl_verify(tmp_path, cp.body, token, ca_pem)
    openssl_verify(tmp_path, cp.body, token, chain.encode().split(b"-----END CERTIFICATE-----\n", 1)[1])

    # Every checkpoint is timestamped, including the empty one published at initialisation.
    wait_for(lambda: not notary.lagging())
    with services.engine.connect() as conn:
        assert conn.execute(select(CheckpointRow.timestamped)).scalars().all() == [True, True]
        assert len(conn.execute(select(TimestampRow.id)).all()) == 2

    material = notary.public_material()
    assert material["witness_policy"] == notary.policy_text
    assert {w["name"] for w in material["witnesses"]} == {"w1", "w2", "w3"}
    assert material["tsa_ca_pem"] == ca_pem.decode()
    health = services.health()
    assert health["status"] == "ok", health
    assert health["checks"]["witnesses"]["members"]["w1"]["lag"] == 0
    metrics = "\n".join(notary.metrics_lines())
    assert 'depository_witness_lag_entries{witness="w2"} 0' in metrics
    assert "depository_tsa_errors_total 0" in metrics
    assert "depository_notary_queue_depth 0" in metrics

    # The proof bundle uses this checkpoint, with its cosignatures and token.
    from depository.proofs import choose_checkpoint

    chosen = choose_checkpoint(services, 0)
    assert chosen is not None and chosen.size == size


def test_many_checkpoints_all_timestamped_latest_witnessed(setup: tuple[Services, Parties]) -> None:
    """Checkpoints published faster than witnessed: each gets a token; witnesses follow the latest."""
    services, _ = setup
    sizes = [deposit(services, 3, tag=f"b{i}") for i in range(8)]
    seen: dict[str, list[int]] = {}

    def progress() -> dict[str, int]:
        with services.engine.connect() as conn:
            now = dict(conn.execute(select(WitnessProgress.witness_name, WitnessProgress.size)).all())
        for name, size in now.items():
            seen.setdefault(name, []).append(size)
        return now

    def sampling(cond: Callable[[], bool]) -> Callable[[], bool]:
        return lambda: (progress(), cond())[1]  # record the witnesses' progress at every poll

    services.notary.start()
    wait_for(sampling(lambda: all(row(services, s).timestamped for s in sizes)))
    # Every checkpoint has exactly one token, over its own body.
    with services.engine.connect() as conn:
        per_cp = conn.execute(select(TimestampRow.checkpoint_id)).scalars().all()
    ids = [row(services, s).id for s in sizes]
    assert sorted(i for i in per_cp if i in ids) == sorted(ids)
    wait_for(sampling(lambda: row(services, sizes[-1]).witnessed))
    # Witnesses follow the latest: all three end at the last size, and the size each witness is known to
    # have cosigned never went down while they caught up (a later checkpoint never loses to an earlier one).
    wait_for(sampling(lambda: cosigners(services, sizes[-1]) == {"w1", "w2", "w3"}))
    final = progress()
    assert final == {"w1": sizes[-1], "w2": sizes[-1], "w3": sizes[-1]}, final
    for name, history in seen.items():
        assert history == sorted(history), (name, history)
    # No witness cosigned an earlier checkpoint after a later one: cosignature ids grow with checkpoint size.
    with services.engine.connect() as conn:
        lines = conn.execute(select(CosignatureRow.witness_name, CosignatureRow.id, CheckpointRow.size)
                             .join(CheckpointRow, CheckpointRow.id == CosignatureRow.checkpoint_id)
                             .order_by(CosignatureRow.id)).all()
    for name in ("w1", "w2", "w3"):
        order = [r.size for r in lines if r.witness_name == name]
        assert order and order == sorted(order), (name, order)


def test_outages_delay_but_catch_up(setup: tuple[Services, Parties]) -> None:
    services, parties = setup
    notary = services.notary
    notary.start()
    s1 = deposit(services, 2, "a")
    wait_for(lambda: row(services, s1).witnessed and row(services, s1).timestamped)

    # TSA and two witnesses down: deposits still go in, nothing is witnessed or stamped.
    parties.stop_tsa()
    parties.stop_witness("w2")
    parties.stop_witness("w3")
    t = time.monotonic()
    s2 = deposit(services, 4, "b")
    assert time.monotonic() - t < 5
    time.sleep(1.5)
    r2 = row(services, s2)
    assert not r2.witnessed and not r2.timestamped
    assert cosigners(services, s2) == {"w1"}
    health = services.health()
    assert health["status"] == "degraded"
    assert health["checks"]["witnesses"]["members"]["w2"]["status"] == "error"
    assert health["checks"]["tsa"]["status"] == "degraded"
    assert "depository_tsa_errors_total 0" not in "\n".join(notary.metrics_lines())

    # One witness back: quorum (2 of 3) by itself, without a new checkpoint.
    parties.start_witness("w2")
    wait_for(lambda: row(services, s2).witnessed, timeout_s=20)
    assert not row(services, s2).timestamped
    # The TSA back: the sweep stamps what was missed.
    parties.start_tsa()
    wait_for(lambda: row(services, s2).timestamped, timeout_s=20)
    # The last witness back: it catches up to the latest checkpoint (consistency proof from its old size).
    parties.start_witness("w3")
    wait_for(lambda: cosigners(services, s2) == {"w1", "w2", "w3"}, timeout_s=20)
    wait_for(lambda: services.health()["status"] == "ok", timeout_s=20)


def test_sm2_witness_cosignature_accepted(tmp_path: Path) -> None:
    """A witness cosigning with Ed25519 and SM2 counts twice when the policy lists both keys."""
    config, parties = make_setup(tmp_path, None, sm2=("w1",), k=4)
    services = build_services(config)
    try:
        services.notary.start()
        size = deposit(services, 2)
        wait_for(lambda: row(services, size).witnessed)
        assert cosigners(services, size) == {"w1", "w1-sm2", "w2", "w3"}
        cp = services.log.latest_checkpoint()
        policy = Policy.from_text(services.notary.policy_text)
        verify_checkpoint_with_policy(services.notary.checkpoint_text(cp), policy)
    finally:
        services.close()
        parties.stop_all()


def test_redis_worker_subprocess(tmp_path: Path) -> None:
    """With Redis: one rq job per checkpoint, run by `depository worker` in another process."""
    config, parties = make_setup(tmp_path, None, redis=True)
    services = build_services(config)
    proc = None
    try:
        services.notary.start()  # the sweeper: enqueues sweeps while work is missing
        sizes = [deposit(services, 3, tag=f"r{i}") for i in range(3)]
        assert services.notary.queue_depth() >= 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEPOSITORY_")}
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", "--home", str(config.home), "worker"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: all(row(services, s).timestamped for s in sizes), timeout_s=60)
        wait_for(lambda: row(services, sizes[-1]).witnessed, timeout_s=60)
        # A witness outage and return, caught up through rq sweeps.
        parties.stop_witness("w3")
        s4 = deposit(services, 2, "r4")
        wait_for(lambda: row(services, s4).witnessed and row(services, s4).timestamped, timeout_s=60)
        assert "w3" not in cosigners(services, s4)
        parties.start_witness("w3")
        wait_for(lambda: "w3" in cosigners(services, s4), timeout_s=60)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(20)
            finally:
                assert proc.stderr is not None
                err = proc.stderr.read().decode(errors="replace")
                proc.stderr.close()
            assert "Traceback" not in err, err[-3000:]
        services.close()
        parties.stop_all()


def test_redis_simple_worker_in_process(tmp_path: Path) -> None:
    """The same jobs run by rq's SimpleWorker in this process (burst), against the service's notary."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    from depository import jobs

    config, parties = make_setup(tmp_path, None, redis=True)
    services = build_services(config)
    connection = Redis.from_url(REDIS_URL)
    try:
        jobs.register(config.home, services.notary)
        size = deposit(services, 4)
        queue = Queue(jobs.NOTARY_QUEUE, connection=connection)
        SimpleWorker([queue], connection=connection).work(burst=True)
        r = row(services, size)
        assert r.witnessed and r.timestamped
        # Enqueueing the same checkpoint again is harmless (idempotent job, unique id).
        services.notary.on_checkpoint(services.log.latest_checkpoint())
        SimpleWorker([queue], connection=connection).work(burst=True)
        assert len(cosigners(services, size)) == 3
    finally:
        jobs.unregister(config.home)
        connection.close()
        services.close()
        parties.stop_all()
