"""`depository` command line: a thin layer over the library (which never imports click).

Every failure prints one line (`error: ...`) and exits non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from cli import (
    background_cmd,
    capture_cmd,
    demo_cmd,
    ers_cmds,
    integrity_cmds,
    keys_cmds,
    log_cmds,
    notary_cmds,
    proof_cmds,
    secret_cmds,
    user_cmds,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(path_type=Path), envvar="DEPOSITORY_HOME",
              help="State directory (default ./depository-home; env DEPOSITORY_HOME).")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """Electronic evidence depository: deposit, prove, verify."""
    # Whatever this process writes (database, keys, content, spools, captures) is the service's alone.
    os.umask(0o077)
    ctx.ensure_object(dict)
    ctx.obj["home"] = home


def load(ctx: click.Context, **overrides: Any) -> Any:
    from depository.config import load_config

    return load_config(home=ctx.obj.get("home"), **overrides)


@cli.command()
@click.option("--origin", help="The log's origin (and key name), e.g. 'depository.example.com/log'.")
@click.option("--pkcs11", "pkcs11_module", type=click.Path(exists=True, dir_okay=False),
              help="PKCS#11 module (shared library) whose token gets the log's Ed25519 key; the user PIN comes "
                   "from DEPOSITORY_PKCS11_PIN or the file in DEPOSITORY_PKCS11_PIN_FILE.")
@click.option("--token", "token_label", help="Label of the PKCS#11 token (with --pkcs11).")
@click.pass_context
def init(ctx: click.Context, origin: str | None, pkcs11_module: str | None, token_label: str | None) -> None:
    """Create the home: keys, database schema, TSA and packet certificates."""
    from depository.wiring import init_home

    config = load(ctx, log_origin=origin)
    if (pkcs11_module is None) != (token_label is None):
        raise click.UsageError("--pkcs11 and --token go together")
    if pkcs11_module is not None and token_label is not None:
        from depository.hsm import PKCS11_FILE, TokenRef, init_token_log_key, read_pin

        if not (config.keys_dir / PKCS11_FILE).exists():
            init_token_log_key(config.keys_dir, config.log_origin,
                               TokenRef(str(Path(pkcs11_module).resolve()), token_label), read_pin())
    keys = init_home(config)
    click.echo(json.dumps({"home": str(config.home.resolve()), "origin": keys.origin, "log_vkey": keys.vkey},
                          indent=2))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="API processes (gunicorn).")
@click.option("--threads", default=4, show_default=True, type=int, help="Threads per API process.")
@click.option("--background", "background_mode", default="sidecar", show_default=True,
              type=click.Choice(["sidecar", "in-process", "none"]),
              help="Where integrator, notary and monitoring run: one supervised sidecar process, threads in "
                   "every API process, or nowhere here (run `depository background` separately).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, threads: int, background_mode: str) -> None:
    """Serve the API; a sidecar process integrates and notarises (one at a time, chosen by lock)."""
    from depository.server import run_server

    config = load(ctx)
    run_server(config, host=host, port=port, workers=workers, threads=threads, background=background_mode)


cli.add_command(log_cmds.tenant)
cli.add_command(log_cmds.deposit)
cli.add_command(log_cmds.get)
cli.add_command(integrity_cmds.audit)
cli.add_command(integrity_cmds.status)
cli.add_command(integrity_cmds.log_group)
cli.add_command(notary_cmds.tsa)
cli.add_command(notary_cmds.witness)
cli.add_command(notary_cmds.worker)
cli.add_command(proof_cmds.proof)
cli.add_command(secret_cmds.secret)
cli.add_command(proof_cmds.verify)
cli.add_command(demo_cmd.demo)
cli.add_command(background_cmd.background)
cli.add_command(user_cmds.user)
cli.add_command(ers_cmds.renew)
cli.add_command(keys_cmds.keys)
cli.add_command(ers_cmds.evidence_record)
cli.add_command(ers_cmds.verify_record)
cli.add_command(capture_cmd.capture)


def main() -> None:
    from depository.client import ClientError
    from depository.errors import DepositoryError
    from evidence.errors import EvidenceError
    from notary_bridge.errors import NotaryError

    try:
        cli.main(prog_name="depository", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (DepositoryError, EvidenceError, NotaryError, ClientError) as e:
        click.echo(f"error: {e.diagnostics()}", err=True)
        sys.exit(1)
    except OSError as e:
        click.echo(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
