"""Alert notifications: signed webhooks (Standard Webhooks) and email (SMTP), with retries and dead letters.

Each new alert gets one `monitoring_deliveries` row per active endpoint of its tenant. A delivery is
attempted by a job (rq or in-process thread, see `watches.py`); every attempt is logged in
`monitoring_delivery_log` (the per-alert delivery log). A failed attempt is retried after
`webhook_retry_base_s * 2^(attempt-1)`; after `webhook_max_attempts` failures the delivery is *dead*
(dead-lettered): it stays visible on the alert, with its last error, and is not tried again.

Webhooks follow the Standard Webhooks spec through the `standardwebhooks` package: headers `webhook-id`
(the delivery id, the same on every retry so receivers can deduplicate), `webhook-timestamp` and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`). The endpoint's secret
(`whsec_<base64>`) is generated here and shown once, when the endpoint is created or its secret rotated.
Signing needs it (unlike an API key, it cannot be stored as a hash), so it is stored sealed under the
home's master key (`depository.secretbox`: AES-256-GCM, key id kept, the row's place as AAD). Webhook URLs are chosen by
tenants, so they are posted to through the same SSRF-guarded fetcher as suspect pages.

Email goes to `smtp_url` (`smtp://[user:pass@]host[:port][?starttls=1]` or `smtps://...`).
"""

from __future__ import annotations

import base64
import json
import secrets
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import insert, select, update
from standardwebhooks.webhooks import Webhook

from depository.deposits import rfc3339_ms
from depository.errors import IntegrityError, NotFound, ValidationFailed
from depository.inputs import storable_text
from depository.monitoring.fetcher import FetchError
from depository.monitoring.models import AlertRow, DeliveryLogRow, DeliveryRow, EndpointRow
from depository.secretbox import SecretBox, is_sealed

if TYPE_CHECKING:
    from depository.monitoring.service import Monitoring

__all__ = ["Notifier", "send_email"]

SMTP_TIMEOUT_S = 10.0
EVENT_TYPE = "alert.created"


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def send_email(smtp_url: str, sender: str, to: str, subject: str, body: str) -> None:
    """Send one plain-text message; raises OSError / smtplib.SMTPException on failure."""
    parts = urlsplit(smtp_url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        # Never the URL itself in the message: it may carry the SMTP password, and this lands in the
        # delivery log that tenants read.
        raise ValueError("smtp_url must be smtp://host[:port] or smtps://host[:port]")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(body)
    smtp_cls = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    with smtp_cls(parts.hostname, port, timeout=SMTP_TIMEOUT_S) as smtp:
        if parts.scheme == "smtp" and parse_qs(parts.query).get("starttls") == ["1"]:
            smtp.starttls()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(msg)


class Notifier:
    def __init__(self, monitoring: Monitoring) -> None:
        self.m = monitoring
        self.engine = monitoring.engine
        self.config = monitoring.s.config
        self.box = SecretBox(monitoring.s.content.master_key)

    @staticmethod
    def _secret_place(endpoint_id: str) -> str:
        return f"monitoring_endpoints/{endpoint_id}/secret"

    def _new_secret(self, endpoint_id: str) -> tuple[str, str]:
        """(secret shown once, what the database stores)."""
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        return secret, self.box.seal(secret, self._secret_place(endpoint_id))

    def signing_secret(self, ep: Any) -> str:
        """The endpoint's secret, unsealed (a row from before sealing holds it in plain text)."""
        if not ep.secret:
            return ""
        return self.box.open(ep.secret, self._secret_place(ep.id)) if is_sealed(ep.secret) else str(ep.secret)

    def seal_plain_secrets(self) -> int:
        """Seal secrets stored in plain text by an earlier version; returns how many."""
        with self.engine.connect() as conn:
            plain = [(r.id, r.secret) for r in conn.execute(select(EndpointRow.id, EndpointRow.secret).where(
                EndpointRow.secret.is_not(None), EndpointRow.secret.not_like("enc1:%")))]
        sqlite = self.engine.dialect.name == "sqlite"
        for endpoint_id, secret in plain:
            with self.engine.begin() as conn:
                if sqlite:  # overwrite the old cell's bytes instead of leaving them in free space
                    conn.exec_driver_sql("PRAGMA secure_delete=ON")
                conn.execute(update(EndpointRow).where(EndpointRow.id == endpoint_id, EndpointRow.secret == secret)
                             .values(secret=self.box.seal(secret, self._secret_place(endpoint_id))))
                if sqlite:
                    conn.exec_driver_sql("PRAGMA secure_delete=OFF")
        if plain and sqlite:
            # The old page versions also sit in the WAL: copy it back and cut it to nothing.
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(plain)

    def rotate_secret(self, tenant_id: str, endpoint_id: str) -> tuple[Any, str]:
        """A new signing secret for a webhook endpoint (shown once); the old one stops signing at once."""
        ep = self.endpoint(tenant_id, endpoint_id)
        if ep.channel != "webhook":
            raise NotFound(f"no webhook endpoint {endpoint_id[:64]}")
        secret, sealed = self._new_secret(endpoint_id)
        with self.engine.begin() as conn:
            conn.execute(update(EndpointRow).where(EndpointRow.id == endpoint_id).values(secret=sealed))
        return self.endpoint(tenant_id, endpoint_id), secret

    # ---- endpoints ---------------------------------------------------------------------------------

    def create_endpoint(self, tenant_id: str, channel: str, target: Any) -> tuple[Any, str | None]:
        """A webhook URL (returns its secret, shown once) or an email address."""
        if not isinstance(target, str) or not 0 < len(target) <= 4096 or not storable_text(target):
            raise ValidationFailed("the target must be a string of 1 to 4096 printable characters")
        row_id = ("whk_" if channel == "webhook" else "eml_") + secrets.token_hex(10)
        secret = sealed = None
        if channel == "webhook":
            parts = urlsplit(target)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
                raise ValidationFailed("url must be an http(s) URL without credentials")
            secret, sealed = self._new_secret(row_id)
        elif channel == "email":
            if target.count("@") != 1 or any(c.isspace() for c in target) or len(target) > 254:
                raise ValidationFailed("address must be one email address")
        else:
            raise ValidationFailed("channel must be webhook or email")
        with self.engine.begin() as conn:
            conn.execute(insert(EndpointRow).values(id=row_id, tenant_id=tenant_id, channel=channel, target=target,
                                                    secret=sealed, created_at=datetime.now(UTC), active=True))
        return self.endpoint(tenant_id, row_id), secret

    def endpoint(self, tenant_id: str, endpoint_id: str) -> Any:  # a Row of monitoring_endpoints
        with self.engine.connect() as conn:
            row = conn.execute(select(EndpointRow).where(EndpointRow.id == endpoint_id,
                                                         EndpointRow.tenant_id == tenant_id,
                                                         EndpointRow.active.is_(True))).first()
        if row is None:
            raise NotFound(f"no endpoint {endpoint_id[:64]}")
        return row

    def endpoints(self, tenant_id: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(EndpointRow).where(EndpointRow.tenant_id == tenant_id,
                                                               EndpointRow.active.is_(True))
                                     .order_by(EndpointRow.created_at)))

    def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> None:
        self.endpoint(tenant_id, endpoint_id)
        with self.engine.begin() as conn:
            conn.execute(update(EndpointRow).where(EndpointRow.id == endpoint_id).values(active=False))

    # ---- deliveries --------------------------------------------------------------------------------

    def enqueue_alert(self, tenant_id: str, alert_id: str) -> list[str]:
        """One pending delivery per active endpoint of the tenant, due now."""
        now = datetime.now(UTC)
        ids = []
        endpoints = self.endpoints(tenant_id)  # read outside the write transaction (SQLite upgrade, see watches)
        with self.engine.begin() as conn:
            for ep in endpoints:
                did = "msg_" + secrets.token_hex(12)
                conn.execute(insert(DeliveryRow).values(id=did, tenant_id=tenant_id, alert_id=alert_id,
                                                        endpoint_id=ep.id, status="pending", attempts=0,
                                                        next_attempt_at=now, created_at=now, updated_at=now))
                ids.append(did)
        return ids

    def deliver(self, delivery_id: str) -> str:
        """One attempt of a delivery (the job body); returns its status afterwards. Never raises for the
        receiver's failures: they are logged and scheduled for retry or dead-lettered."""
        with self.engine.connect() as conn:
            d = conn.execute(select(DeliveryRow).where(DeliveryRow.id == delivery_id)).first()
            if d is None or d.status != "pending":
                return d.status if d is not None else "missing"
            ep = conn.execute(select(EndpointRow).where(EndpointRow.id == d.endpoint_id)).first()
            alert = conn.execute(select(AlertRow).where(AlertRow.id == d.alert_id)).first()
        attempt = d.attempts + 1
        http_status: int | None = None
        error: str | None = None
        if ep is None or not ep.active or alert is None:
            error = "endpoint deleted"
        else:
            try:
                if ep.channel == "webhook":
                    http_status = self._post_webhook(ep, d.id, alert)
                    if not 200 <= http_status < 300:
                        error = f"receiver answered HTTP {http_status}"
                else:
                    self._email(ep, alert)
            except FetchError as e:
                error = e.diagnostics()
            except (OSError, smtplib.SMTPException, ValueError) as e:
                error = f"{type(e).__name__}: {e}"
            except IntegrityError as e:  # the sealed secret does not open (another master key)
                error = e.diagnostics()
        now = datetime.now(UTC)
        if error is None:
            status, next_at = "delivered", now
        elif attempt >= self.config.webhook_max_attempts or (ep is None or not ep.active):
            status, next_at = "dead", now
        else:
            status = "pending"
            next_at = now + timedelta(seconds=self.config.webhook_retry_base_s * 2 ** (attempt - 1))
        with self.engine.begin() as conn:
            conn.execute(insert(DeliveryLogRow).values(delivery_id=d.id, attempt=attempt, at=now, ok=error is None,
                                                       http_status=http_status,
                                                       error=error[:1000] if error else None, message_id=d.id))
            conn.execute(update(DeliveryRow).where(DeliveryRow.id == d.id).values(
                status=status, attempts=attempt, next_attempt_at=next_at,
                last_error=error[:1000] if error else None, updated_at=now))
        return status

    def _payload(self, alert: Any) -> dict[str, Any]:
        from depository.monitoring.service import alert_json

        data = alert_json(alert)
        data["packet_url"] = f"{self.config.public_base_url.rstrip('/')}/v1/alerts/{alert.id}/packet.pdf"
        return {"type": EVENT_TYPE, "timestamp": rfc3339_ms(datetime.now(UTC)), "data": data}

    def _post_webhook(self, ep: Any, msg_id: str, alert: Any) -> int:
        body = json.dumps(self._payload(alert), separators=(",", ":"))
        now = datetime.now(UTC)
        signature = Webhook(self.signing_secret(ep)).sign(msg_id, now, body)
        headers = {"Content-Type": "application/json", "webhook-id": msg_id,
                   "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
        return self.m.fetcher.post(ep.target, body.encode(), headers).status

    def _email(self, ep: Any, alert: Any) -> None:
        if not self.config.smtp_url:
            raise ValueError("no smtp_url configured")
        p = self._payload(alert)["data"]
        subject = f"Possible copy of work {alert.work_deposit_id}"
        body = "\n".join([
            "The evidence depository found a page that matches one of your registered works.", "",
            f"Alert:            {alert.id}", f"Work deposit:     {alert.work_deposit_id}",
            f"Page:             {alert.page_url}", f"Matched resource: {alert.matched_url}",
            f"Method, score:    {alert.method}, {p['score']}", f"Capture deposit:  {alert.capture_deposit_id}",
            f"Found at:         {p['created_at']}", "",
            f"Infringement packet (PDF): {p['packet_url']}", ""])
        url = self.config.smtp_url
        if is_sealed(url):  # `depository secret seal smtp_url`: no password in config.toml
            url = self.box.open(url, "config/smtp_url")
        send_email(url, self.config.smtp_from, ep.target, subject, body)

    def deliveries(self, tenant_id: str, alert_id: str) -> list[dict[str, Any]]:
        """The alert's delivery log: each delivery with its endpoint and every attempt."""
        with self.engine.connect() as conn:
            ds = conn.execute(select(DeliveryRow).where(DeliveryRow.tenant_id == tenant_id,
                                                        DeliveryRow.alert_id == alert_id)
                              .order_by(DeliveryRow.created_at)).all()
            logs = conn.execute(select(DeliveryLogRow).where(DeliveryLogRow.delivery_id.in_([d.id for d in ds]))
                                .order_by(DeliveryLogRow.id)).all() if ds else []
            eps = {e.id: e for e in conn.execute(select(EndpointRow).where(
                EndpointRow.id.in_([d.endpoint_id for d in ds])))} if ds else {}
        out = []
        for d in ds:
            ep = eps.get(d.endpoint_id)
            out.append({
                "id": d.id, "endpoint": d.endpoint_id, "channel": ep.channel if ep else None,
                "target": ep.target if ep else None, "status": d.status, "attempts": d.attempts,
                "next_attempt_at": rfc3339_ms(_utc(d.next_attempt_at)) if d.status == "pending" else None,
                "last_error": d.last_error,
                "log": [{"attempt": g.attempt, "at": rfc3339_ms(_utc(g.at)), "ok": g.ok, "http_status": g.http_status,
                         "error": g.error} for g in logs if g.delivery_id == d.id]})
        return out
