"""Commands of the notary bridge: the built-in TSA, a C2SP witness, and the rq worker."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def tsa() -> None:
    """The built-in RFC 3161 time-stamping authority."""


@tsa.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3161, show_default=True, type=int)
@click.option("--name", default="Depository Demo TSA", show_default=True, help="TSA name on first start.")
@click.pass_context
def tsa_serve(ctx: click.Context, host: str, port: int, name: str) -> None:
    """Serve RFC 3161 over HTTP (POST application/timestamp-query)."""
    from depository.config import load_config
    from notary_bridge.tsa_server import init_tsa_material, run_tsa_server

    config = load_config(home=ctx.find_root().obj.get("home"))
    init_tsa_material(Path(config.home), name)
    click.echo(f"TSA on http://{host}:{port}/ (CA {config.home / 'tsa' / 'tsa-ca.pem'})")
    run_tsa_server(Path(config.home), host, port)


@click.group()
def witness() -> None:
    """A C2SP tlog-witness, as a court or notary would run it."""


@click.command()
def worker() -> None:
    """Run an rq worker for witness and timestamp jobs (needs DEPOSITORY_REDIS_URL)."""
    raise click.ClickException("the rq worker arrives with the notary bridge; set no DEPOSITORY_REDIS_URL")
