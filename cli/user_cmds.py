"""`depository user create TENANT EMAIL --role ROLE`: people who sign in to the web console."""

from __future__ import annotations

import json
import sys

import click


@click.group()
def user() -> None:
    """People of a tenant who sign in to the web console (works on the local home's database)."""


@user.command("create")
@click.argument("tenant_id")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "legal", "viewer"]), default="legal", show_default=True,
              help="admin and legal may deposit; viewer only reads.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def user_create(ctx: click.Context, tenant_id: str, email: str, role: str, password_stdin: bool) -> None:
    """Create a console user; the password is prompted for (or read from stdin), never an argument."""
    from depository.config import load_config
    from depository.console.users import Users
    from depository.db import make_engine

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    config = load_config(home=ctx.find_root().obj.get("home"))
    engine = make_engine(config.effective_database_url)
    try:
        u = Users(engine).create(tenant_id, email, password, role)
    finally:
        engine.dispose()
    click.echo(json.dumps({"user_id": u.id, "tenant_id": u.tenant_id, "email": u.email, "role": u.role}))
