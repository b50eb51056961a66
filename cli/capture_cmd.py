"""`depository capture URL`: capture a web page in the depository's browser, as evidence."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from cli.log_cmds import _client, key_opt, server_opt

POLL_S = 0.5


@click.command()
@click.argument("url")
@click.option("--matter", help="The matter the capture's deposits belong to (default capture:<id>).")
@click.option("--operator", help="Who asked for the capture (recorded in the signed manifest).")
@click.option("--wait", type=float, default=120.0, show_default=True,
              help="Seconds to wait for the capture to finish (0: print the queued capture and exit).")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write the manifest and every artefact into this folder once done.")
@server_opt
@key_opt
def capture(url: str, matter: str | None, operator: str | None, wait: float, out: Path | None,
            server: str | None, api_key: str | None) -> None:
    """Render URL in headless Chromium; deposit screenshot, PDF, DOM, WARC, HAR and the signed manifest."""
    client = _client(server, api_key)
    rec = client.capture(url, matter=matter, operator=operator)
    deadline = time.monotonic() + wait
    while rec["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(POLL_S)
        rec = client.get_capture(rec["id"])
    if wait > 0 and rec["status"] in ("queued", "running"):
        raise click.ClickException(f"capture {rec['id']} still {rec['status']} after {wait:g} s")
    if rec["status"] == "failed":
        raise click.ClickException(f"capture {rec['id']} failed: {rec.get('error')}")
    if out is not None and rec["status"] == "done":
        out.mkdir(parents=True, exist_ok=True)
        for d in rec["deposits"]:
            (out / d["artefact"]).write_bytes(client.capture_artefact(rec["id"], d["artefact"]))
    click.echo(json.dumps(rec, indent=2))
