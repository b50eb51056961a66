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


@witness.command("serve")
@click.option("--home", "witness_home", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The witness's own directory: key, witness.vkey, state database.")
@click.option("--name", required=True, help="The witness key name, e.g. 'court.example/witness'.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", required=True, type=int)
@click.option("--log", "logs", required=True, multiple=True, metavar="VKEY",
              help="Verifier key of a log to witness (its name is the log's origin); repeatable.")
@click.option("--sm2", is_flag=True, help="Also cosign with an SM2 key (national profile).")
def witness_serve(
    witness_home: Path, name: str, host: str, port: int, logs: tuple[str, ...], sm2: bool
) -> None:
    """Serve POST /add-checkpoint; creates the key and DIR/witness.vkey on first start."""
    from notary_bridge.witness_server import run_witness_server

    def ready(url: str, vkey: str) -> None:
        click.echo(f"witness {name} on {url}/ (vkey {vkey})", err=True)

    run_witness_server(witness_home, name, host, port, list(logs), sm2=sm2, ready=ready)


@click.command()
@click.option("--burst", is_flag=True, help="Exit when the queues are empty (tests, cron).")
@click.option("--queue", "queues", multiple=True, type=click.Choice(["notary", "monitoring"]),
              default=("notary", "monitoring"), show_default=True)
@click.pass_context
def worker(ctx: click.Context, burst: bool, queues: tuple[str, ...]) -> None:
    """Run an rq worker: witness/timestamp jobs and watch fetches (needs DEPOSITORY_REDIS_URL)."""
    from depository.config import load_config
    from depository.jobs import run_worker

    config = load_config(home=ctx.find_root().obj.get("home"))
    if not config.redis_url:
        raise click.ClickException("no DEPOSITORY_REDIS_URL: without Redis the notary runs in-process")
    run_worker(config, burst=burst, queues=queues)
