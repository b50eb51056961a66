"""`depository secret seal SETTING`: seal a secret setting (the SMTP URL with its password) under the
home's master key, so config.toml holds `enc1:...` instead of the password."""

from __future__ import annotations

import sys

import click

SEALABLE = ("smtp_url",)


@click.group()
def secret() -> None:
    """Secrets at rest (sealed under the home's master key)."""


@secret.command("seal")
@click.argument("setting", type=click.Choice(SEALABLE))
@click.pass_context
def secret_seal(ctx: click.Context, setting: str) -> None:
    """Read the value from the first line of stdin (never an argument: it would show in `ps`) and print
    the sealed form to put in config.toml or DEPOSITORY_SMTP_URL."""
    from depository.config import load_config
    from depository.content_store import ContentStore
    from depository.secretbox import SecretBox

    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise click.UsageError("send the value on stdin")
    config = load_config(home=ctx.find_root().obj.get("home"))
    store = ContentStore(config.content_dir, config.keys_dir / "master.key")
    click.echo(SecretBox(store.master_key).seal(value, f"config/{setting}"))
