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
