"""Commands over the local home (tenant, audit) and over the API (deposit, get)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click


def _config(ctx: click.Context) -> Any:
    from depository.config import load_config

    return load_config(home=ctx.find_root().obj.get("home"))


def _services(ctx: click.Context) -> Any:
    from depository.wiring import build_services

    return build_services(_config(ctx), notary=False)


@click.group()
def tenant() -> None:
    """Tenants and their API keys (works on the local home's database)."""


@tenant.command("create")
@click.argument("name")
@click.option("--store-content", is_flag=True, help="Keep uploaded files, encrypted at rest.")
@click.option("--cipher", type=click.Choice(["aes-256-gcm", "sm4-gcm"]), default="aes-256-gcm",
              show_default=True)
@click.option("--scope", "scopes", multiple=True, help="Scopes of the first key (default deposit read proof).")
@click.pass_context
def tenant_create(ctx: click.Context, name: str, store_content: bool, cipher: str, scopes: tuple[str, ...]) -> None:
    """Create a tenant; prints {"tenant_id", "api_key"} (the key is shown once)."""
    s = _services(ctx)
    try:
        wrapped = s.content.new_tenant_key(cipher) if store_content else None
        tenant_id, key = s.tenants.create(name, store_content=store_content, cipher=cipher,
                                          wrapped_content_key=wrapped,
                                          **({"scopes": scopes} if scopes else {}))
    finally:
        s.close()
    click.echo(json.dumps({"tenant_id": tenant_id, "api_key": key}))


@tenant.command("list")
@click.pass_context
def tenant_list(ctx: click.Context) -> None:
    """List tenants."""
    s = _services(ctx)
    try:
        for t in s.tenants.all():
            click.echo(json.dumps({"tenant_id": t.id, "name": t.name, "store_content": t.store_content,
                                   "created_at": t.created_at.isoformat()}))
    finally:
        s.close()


@tenant.command("keys")
@click.argument("tenant_id")
@click.pass_context
def tenant_keys(ctx: click.Context, tenant_id: str) -> None:
    """List a tenant's API keys (ids, scopes, state; never secrets)."""
    s = _services(ctx)
    try:
        for k in s.tenants.list_keys(tenant_id):
            click.echo(json.dumps(k.to_json()))
    finally:
        s.close()


@tenant.command("add-key")
@click.argument("tenant_id")
@click.option("--scope", "scopes", multiple=True, default=("deposit", "read", "proof"), show_default=True)
@click.option("--label", default="")
@click.pass_context
def tenant_add_key(ctx: click.Context, tenant_id: str, scopes: tuple[str, ...], label: str) -> None:
    """Create another API key for a tenant (shown once)."""
    s = _services(ctx)
    try:
        key = s.tenants.create_key(tenant_id, scopes, label)
    finally:
        s.close()
    click.echo(json.dumps({"tenant_id": tenant_id, "api_key": key}))


@tenant.command("revoke-key")
@click.argument("key_id")
@click.pass_context
def tenant_revoke_key(ctx: click.Context, key_id: str) -> None:
    """Revoke an API key by its id (the hex part after 'dpk_')."""
    s = _services(ctx)
    try:
        s.tenants.revoke_key(key_id)
    finally:
        s.close()
    click.echo(json.dumps({"revoked": key_id}))


def _client(server: str | None, api_key: str | None) -> Any:
    from depository.client import DepositoryClient

    key = api_key or os.environ.get("DEPOSITORY_API_KEY")
    if not key:
        raise click.UsageError("an API key is needed: --api-key or DEPOSITORY_API_KEY")
    return DepositoryClient(server or os.environ.get("DEPOSITORY_SERVER") or "http://127.0.0.1:8080", key)


server_opt = click.option("--server", help="API base URL (env DEPOSITORY_SERVER; default http://127.0.0.1:8080).")
key_opt = click.option("--api-key", help="API key (env DEPOSITORY_API_KEY).")


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--kind", required=True,
              type=click.Choice(["contract", "invoice", "license", "copyright", "web-capture", "other"]))
@click.option("--meta", "metas", multiple=True, metavar="KEY=VALUE",
              help="Metadata field; VALUE is parsed as JSON when it is JSON (e.g. parties='[{\"name\":\"A\"}]').")
@click.option("--metadata-file", type=click.Path(exists=True, path_type=Path), help="Metadata as a JSON file.")
@click.option("--matter", help="The matter (dispute, order) this deposit belongs to.")
@click.option("--follows", help="The deposit this one follows in its matter.")
@click.option("--wait", type=float, default=0, help="Seconds to wait for inclusion in a checkpoint.")
@server_opt
@key_opt
def deposit(path: Path, kind: str, metas: tuple[str, ...], metadata_file: Path | None, matter: str | None,
            follows: str | None, wait: float, server: str | None, api_key: str | None) -> None:
    """Deposit FILE (or every file under FOLDER); prints each deposit as JSON."""
    from rich.progress import Progress

    from depository.client import iter_files

    metadata: dict[str, Any] = json.loads(metadata_file.read_text()) if metadata_file else {}
    for m in metas:
        k, sep, v = m.partition("=")
        if not sep or not k:
            raise click.UsageError(f"--meta {m!r}: want KEY=VALUE")
        try:
            metadata[k] = json.loads(v)
        except ValueError:
            metadata[k] = v
    client = _client(server, api_key)
    files = list(iter_files(path))
    if path.is_file():
        click.echo(json.dumps(client.deposit_file(path, kind, metadata, matter=matter, follows=follows,
                                                  wait_s=wait)))
        return
    with Progress(transient=True) as progress:
        task = progress.add_task("depositing", total=len(files))
        for f in files:
            click.echo(json.dumps(client.deposit_file(f, kind, metadata, matter=matter, wait_s=wait)))
            progress.advance(task)


@click.command()
@click.argument("deposit_id")
@server_opt
@key_opt
def get(deposit_id: str, server: str | None, api_key: str | None) -> None:
    """Show a deposit and its status."""
    click.echo(json.dumps(_client(server, api_key).get(deposit_id), indent=2))
