"""The one place that chooses concrete implementations: engine, log, keys, notary, job runner.

Everything else receives what it needs from the `Services` built here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from depository.audit import AuditTrust
from depository.config import Config
from depository.content_store import ContentStore
from depository.db import make_engine, migrate
from depository.deposits import Deposits
from depository.integrator import Integrator, integrator_lock_for
from depository.integrity import HIGH_WATER_FILE, HighWater, init_chain_key, link_unchained, load_chain_key
from depository.keys import LogKeys, init_log_keys, load_log_keys
from depository.log import Log, PublishedCheckpoint
from depository.tenants import Tenants

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: Config
    engine: Engine
    keys: LogKeys
    log: Log
    tenants: Tenants
    deposits: Deposits
    content: ContentStore
    notary: Any = None  # depository.notary.Notary when witnesses or a TSA are configured
    integrator: Integrator | None = None
    rate_limiter: Any = None
    redis: Any = None
    monitoring: Any = None  # depository.monitoring.service.Monitoring (attach_monitoring)
    captures: Any = None  # depository.capture.service.Captures (on-demand web captures)
    _started: bool = field(default=False, repr=False)

    def start_background(self) -> None:
        """Start the integrator loop (it waits for the integrator lock) and the notary workers."""
        if self._started:
            return
        self._started = True
        if self.config.run_integrator:
            self.integrator = Integrator(self.log, integrator_lock_for(self.engine, self.config.home),
                                         max_entries=self.config.batch_max_entries,
                                         interval_ms=self.config.batch_interval_ms)
            self.integrator.start()
        if self.notary is not None:
            self.notary.start()
        if self.monitoring is not None:
            self.monitoring.start()

    def stop_background(self) -> None:
        if self.monitoring is not None:
            self.monitoring.stop()
        if self.integrator is not None:
            self.integrator.stop()
            self.integrator = None
        if self.notary is not None:
            self.notary.stop()
        self._started = False

    def close(self) -> None:
        self.stop_background()
        if self.captures is not None:
            self.captures.close()
        self.log.close()
        self.engine.dispose()

    def deposits_status(self, indices: list[int]) -> dict[int, str]:
        """pending -> sequenced (in a checkpoint) -> timestamped -> witnessed (quorum and token)."""
        from sqlalchemy import func, select

        from depository.models import CheckpointRow

        with self.engine.connect() as conn:
            def max_size(*conds: Any) -> int:
                q = select(func.max(CheckpointRow.size))
                for c in conds:
                    q = q.where(c)
                return int(conn.execute(q).scalar() or 0)

            in_cp = max_size()
            stamped = max_size(CheckpointRow.timestamped.is_(True))
            witnessed = max_size(CheckpointRow.timestamped.is_(True), CheckpointRow.witnessed.is_(True))
        out = {}
        for i in indices:
            out[i] = ("witnessed" if i < witnessed else "timestamped" if i < stamped
                      else "sequenced" if i < in_cp else "pending")
        return out

    def check_backpressure(self, principal: Any) -> None:
        """429 when the key is over its rate; the sequencer itself answers 503 when integration lags."""
        if self.rate_limiter is not None:
            self.rate_limiter.check(principal.key_id)

    def notary_checkpoint_text(self, cp: PublishedCheckpoint) -> str:
        return self.notary.checkpoint_text(cp) if self.notary is not None else cp.note

    def public_keys(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "origin": self.keys.origin,
            "log_vkey": self.keys.vkey,
            "log_sm2_vkey": self.keys.sm2_vkey,
            "log_sm2_public_key_pem": self.keys.sm2_public_pem,
        }
        if self.notary is not None:
            out.update(self.notary.public_material())
        from depository.rotation import published_keys  # issue 17: validity periods and retired keys

        out.update(published_keys(self.config.home))
        return out

    def health(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = {"status": "ok"}
        except Exception as e:
            checks["database"] = {"status": "error", "detail": type(e).__name__}
        size, nxt = self.log.sizes() if checks["database"]["status"] == "ok" else (0, 0)
        checks["log"] = {"status": "ok", "tree_size": size, "pending": nxt - size}
        if checks["database"]["status"] == "ok":
            # A halted integrator signs nothing: deposits are durable and wait (see depository.integrity).
            halt = self.log.halts.current()
            checks["integrity"] = ({"status": "ok"} if halt is None else
                                   {"status": "halted", **halt.to_json(),
                                    "resume": "depository audit (or depository log resume --reason ...)"})
        if self.redis is not None:
            # The rq queue of the notary (and the shared rate limiter) live there: deposits go on without
            # it, but checkpoints are not witnessed or stamped until it is back.
            try:
                self.redis.ping()
                checks["redis"] = {"status": "ok"}
            except Exception as e:
                checks["redis"] = {"status": "error", "detail": type(e).__name__}
        limiter_health = getattr(self.rate_limiter, "health", None)
        if limiter_health is not None:
            checks["rate_limit"] = limiter_health()
        if self.notary is not None:
            try:
                checks.update(self.notary.health())
            except Exception as e:  # the database went away between the checks: report, never raise
                checks["notary"] = {"status": "error", "detail": type(e).__name__}
        # A party that is not configured at all is reported too: without it packets are only preliminary
        # (depository.packets.never_court_ready), which is not "ok" even though nothing is failing.
        policy = getattr(self.notary, "policy", None) if self.notary is not None else None
        if "witnesses" not in checks and (policy is None or policy.quorum == "none"):
            checks["witnesses"] = {"status": NOT_CONFIGURED, "detail": "no witness policy: packets cannot be "
                                   "court-ready (set witness_policy_file)"}
        if "tsa" not in checks and getattr(self.notary, "stamper", None) is None:
            checks["tsa"] = {"status": NOT_CONFIGURED, "detail": "no timestamp authority: packets cannot be "
                             "court-ready (set tsa_urls)"}
        status = "ok" if all(c.get("status") == "ok" for c in checks.values()) else "degraded"
        failing = any(c.get("status") not in ("ok", NOT_CONFIGURED) for c in checks.values())
        return {"status": status, "failing": failing, "court_ready": not any(
            c.get("status") == NOT_CONFIGURED for c in checks.values()), "checks": checks}


#: /healthz status of a party (TSA, witnesses) the depository has no configuration for.
NOT_CONFIGURED = "not-configured"


def init_home(config: Config) -> LogKeys:
    """Create the home: directories, keys, schema, the empty checkpoint. Idempotent."""
    from depository.packets import init_packet_material
    from notary_bridge.tsa_server import init_tsa_material

    config.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    config.home.chmod(0o700)  # keys, the database and stored content live here: the service's alone
    keys = init_log_keys(config.keys_dir, config.log_origin)
    init_tsa_material(config.home, "Depository TSA")  # the built-in TSA's CA and certificate
    init_packet_material(config.home)  # the packet signer's CA, certificate and CRL
    chain_key = init_chain_key(config.keys_dir)
    migrate(config.effective_database_url)
    engine = make_engine(config.effective_database_url)
    try:
        Log(engine, keys, verifier=keys.ed25519.verifier(), chain_key=chain_key,
            high_water=HighWater(config.home / HIGH_WATER_FILE)).initialize()
        link_unchained(engine, chain_key)  # checkpoints of a home made before the chain existed
    finally:
        engine.dispose()
    return keys


def build_services(config: Config, *, notary: bool = True) -> Services:
    engine = make_engine(config.effective_database_url)
    keys = load_log_keys(config.keys_dir, config.log_origin)
    the_log = Log(engine, keys, verifier=keys.ed25519.verifier(), chain_key=load_chain_key(config.keys_dir),
                  high_water=HighWater(config.home / HIGH_WATER_FILE), max_pending_entries=config.max_pending_entries)
    the_log.initialize()
    services = Services(
        config=config, engine=engine, keys=keys, log=the_log, tenants=Tenants(engine),
        deposits=Deposits(engine, the_log),
        content=ContentStore(config.content_dir, config.keys_dir / "master.key"),
    )
    if config.redis_url:
        import redis

        services.redis = redis.Redis.from_url(config.redis_url)
    if config.rate_limit_per_second > 0:
        from depository.ratelimit import FailoverRateLimiter, LocalRateLimiter, RedisRateLimiter

        local = LocalRateLimiter(config.rate_limit_per_second, config.rate_limit_burst)
        services.rate_limiter = (
            FailoverRateLimiter(RedisRateLimiter(services.redis, config.rate_limit_per_second,
                                                 config.rate_limit_burst), local)
            if services.redis is not None else local)
    if notary and (config.tsa_urls or config.witness_policy_file):
        from depository.notary import build_notary

        services.notary = build_notary(config, engine, the_log)
    from depository.monitoring.service import attach_monitoring

    attach_monitoring(services)
    from depository.capture.service import Captures

    runner = None
    if services.redis is not None:  # captures run in `depository worker`, never in an API process
        from depository.capture.jobs import RqCaptureRunner

        runner = RqCaptureRunner(config.home, services.redis)
    from depository.notary import build_stamper

    services.captures = Captures(services, runner=runner, stamper=build_stamper(config)[0])
    return services


def audit_trust(config: Config, keys: LogKeys) -> AuditTrust:
    """What `depository audit` verifies against: the log's keys, the chain key, the policy, the TSA roots."""
    from depository.notary import load_policy, tsa_ca_path

    policy = load_policy(config.witness_policy_file, keys.origin)[0] if config.witness_policy_file else None
    try:
        tsa_ca = tsa_ca_path(config.home).read_bytes()
    except OSError:
        tsa_ca = None
    return AuditTrust(origin=keys.origin, log_verifiers=[keys.ed25519.verifier(), keys.sm2.verifier()],
                      chain_key=load_chain_key(config.keys_dir), policy=policy, tsa_ca_pem=tsa_ca)
