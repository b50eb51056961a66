"""`depository keys`: every key of the home, its fingerprint and where it lives."""

from __future__ import annotations

import json

import click


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def keys(ctx: click.Context, as_json: bool) -> None:
    """List the home's keys: algorithm, fingerprint, location (file or PKCS#11 token), where published."""
    if ctx.invoked_subcommand is not None:
        return
    from depository.config import load_config
    from depository.keyring import list_keys

    entries = list_keys(load_config(home=ctx.obj.get("home") if ctx.obj else None))
    if as_json:
        click.echo(json.dumps({"keys": entries}, indent=2))
        return
    for e in entries:
        if "error" in e:
            click.echo(f"{e['key']:<18} ERROR {e['error']}")
            continue
        click.echo(f"{e['key']:<18} {e['algorithm']:<22} {e['fingerprint'] or '-'}")
        click.echo(f"{'':<18} at {e['location']}")
        if e.get("not_after"):
            click.echo(f"{'':<18} valid {e['not_before']} .. {e['not_after']}")


@keys.command()
@click.argument("role", type=click.Choice(["tsa", "packet", "master", "witness", "checkpoint"]))
@click.option("--name", help="Common name stem of the new certificates (tsa, packet).")
@click.pass_context
def rotate(ctx: click.Context, role: str, name: str | None) -> None:
    """Replace a key: the new one signs from now on, the old public part stays published (key_history)."""
    from depository.config import load_config
    from depository.errors import ConfigError
    from depository.rotation import rotate_master, rotate_packet, rotate_tsa

    config = load_config(home=ctx.obj.get("home") if ctx.obj else None)
    if role == "checkpoint":
        raise ConfigError("the checkpoint key names the log: rotating it means a new log (temporal sharding); "
                          "see 'Rotating the checkpoint key' in docs/deploy.md")
    if role == "witness":
        raise ConfigError("witness keys live in each witness's own home, not the depository's: see "
                          "'Rotating a witness key' in docs/deploy.md")
    if role == "tsa":
        out = rotate_tsa(config.home, *([name] if name else []))
    elif role == "packet":
        out = rotate_packet(config.home, *([name] if name else []))
    else:
        from depository.db import make_engine

        engine = make_engine(config.effective_database_url)
        try:
            out = rotate_master(config.keys_dir, engine)
        finally:
            engine.dispose()
    click.echo(json.dumps(out))
