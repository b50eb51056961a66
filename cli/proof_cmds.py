"""Evidence packets: generate (`proof`) on the local home and check offline (`verify`).

`verify` needs no server, no home and no network: the packet, optionally the original file and a trust
directory. It prints one row per check and exits 0 only if every check passes; a file that is not a
packet (or is truncated) gets one line on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from depository.deposits import Deposit
    from depository.wiring import Services
    from evidence.summary import Summary
    from evidence.verify import Check


@click.command()
@click.argument("deposit_ids", nargs=-1, required=True)
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the PDF.")
@click.option("--tenant", help="Tenant id owning the deposits (default: found from the deposit ids).")
@click.option("--matter", help="Matter reference printed on a matter packet's cover.")
@click.option("--preliminary", is_flag=True,
              help="Write a packet marked preliminary when it is not court-ready yet (no witness quorum or "
                   "timestamp), instead of failing.")
@click.pass_context
def proof(ctx: click.Context, deposit_ids: tuple[str, ...], output: Path, tenant: str | None,
          matter: str | None, preliminary: bool) -> None:
    """Write the signed evidence packet of DEPOSIT_IDS (several ids: one matter packet).

    Court-ready only (witnessed to quorum and timestamped) unless --preliminary.
    """
    from depository.config import load_config
    from depository.packets import build_packet_status
    from depository.wiring import build_services

    config = load_config(home=ctx.obj.get("home") if ctx.obj else None)
    s = build_services(config)
    try:
        deposits = [_find(s, i, tenant) for i in deposit_ids]
        owners = {d.tenant_id for d in deposits}
        if len(owners) > 1:
            raise click.ClickException("the deposits belong to different tenants; a packet holds one tenant's")
        pdf, status = build_packet_status(s, deposits, matter=matter, preliminary=preliminary)
    finally:
        s.close()
    output.write_bytes(pdf)
    click.echo(json.dumps({"packet": str(output), "deposits": list(deposit_ids), "bytes": len(pdf),
                           "status": status}))


def _find(s: Services, deposit_id: str, tenant: str | None) -> Deposit:
    """A deposit by id on the local home (the operator's CLI may read every tenant's deposits)."""
    from sqlalchemy import select

    from depository.errors import NotFound
    from depository.models import DepositRow

    if tenant is None:
        with s.engine.connect() as conn:
            tenant = conn.execute(select(DepositRow.tenant_id).where(DepositRow.id == deposit_id)).scalar()
        if tenant is None:
            raise NotFound(f"no deposit {deposit_id}")
    return s.deposits.get(tenant, deposit_id)


@click.command()
@click.argument("packet", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--file", "original", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The original file, to check against the hashes in the leaf.")
@click.option("--trust", "trust_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory with log.vkey, log-sm2.pem, witness-policy.txt, tsa-ca.pem, packet-ca.pem.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict and the checks as JSON.")
def verify(packet: Path, original: Path | None, trust_dir: Path | None, as_json: bool) -> None:
    """Check an evidence packet (PDF) or a proof bundle (JSON) offline.

    Exit 0 when every check is verified, 1 when one failed, 3 when nothing failed but some evidence is not
    present (no timestamp or witnesses: what is proven is stated), 2 when the file is not a packet.
    """
    from evidence.errors import EvidenceError
    from evidence.summary import summarize
    from evidence.verify import Trust, read_any, verify_bundle, verify_packet

    try:
        data = packet.read_bytes()
        file_bytes = original.read_bytes() if original else None
        trust = Trust.from_dir(trust_dir) if trust_dir else None
        kind = read_any(data)
        checks = (verify_packet(data, file=file_bytes, trust=trust) if kind == "pdf"
                  else verify_bundle(data, file=file_bytes, trust=trust))
    except EvidenceError as e:
        click.echo(f"error: {packet}: {e.diagnostics()}", err=True)
        sys.exit(2)
    summary = summarize(checks, file_given=file_bytes is not None)
    if as_json:
        click.echo(json.dumps({"ok": summary.verdict == "verified", "verdict": summary.verdict,
                               "headline": summary.headline, "summary": summary.to_json(),
                               "trusted": trust is not None, "checks": [c.to_json() for c in checks]},
                              indent=2, ensure_ascii=False))
    else:
        _table(checks, packet, trust is not None, summary)
    sys.exit(EXIT_CODES.get(summary.verdict, 1))


EXIT_CODES = {"verified": 0, "partial": 3}


def _table(checks: list[Check], packet: Path, trusted: bool, summary: Summary) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    colour = {"verified": "bold green", "partial": "bold yellow"}.get(summary.verdict, "bold red")
    console.print(f"[{colour}]{escape(summary.headline)}[/{colour}]")
    for line in summary.proven[1:] if summary.verdict in ("verified", "partial") else summary.proven:
        console.print(f"  proven: {escape(line)}")
    for line in summary.problems:
        console.print(f"  [red]failed:[/red] {escape(line)}")
    for line in summary.missing:
        console.print(f"  [yellow]not present:[/yellow] {escape(line)}")
    table = Table(title=f"Verification of {packet.name}", show_lines=False)
    table.add_column("Check", no_wrap=True)
    table.add_column("Result", no_wrap=True)
    table.add_column("Detail")
    table.add_column("Why it matters", style="dim")
    styles = {"verified": "[green]VERIFIED[/green]", "failed": "[bold red]FAILED[/bold red]",
              "not present": "[yellow]not present[/yellow]"}
    order = {"failed": 0, "not present": 1, "verified": 2}
    for c in sorted(checks, key=lambda c: order.get(c.status, 0)):
        table.add_row(escape(c.name), styles.get(c.status, c.status), escape(c.detail), escape(c.explanation))
    console.print(table)
    if not trusted:
        console.print("[yellow]No --trust directory: keys were taken from the packet itself (untrusted keys). "
                      "This shows consistency, not who signed.[/yellow]")
    console.print({"verified": "[bold green]ALL CHECKS PASSED[/bold green]",
                   "partial": "[bold yellow]NOTHING FAILED, BUT SOME EVIDENCE IS NOT PRESENT[/bold yellow]"}.get(
        summary.verdict, "[bold red]VERIFICATION FAILED[/bold red]"))
