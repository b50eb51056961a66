"""`depository audit`, `depository status` and `depository log resume`: the log's integrity, for operators."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

import click


def _config(ctx: click.Context) -> Any:
    from depository.config import load_config

    return load_config(home=ctx.find_root().obj.get("home"))


def _services(ctx: click.Context) -> Any:
    from depository.wiring import build_services

    return build_services(_config(ctx), notary=False)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--since-checkpoint", "since", metavar="SEQ|last",
              help="Incremental: start at checkpoint SEQ (or where the last clean audit ended), proving its "
                   "stored edge against its signed root; what lies wholly before it is not re-read.")
@click.pass_context
def audit(ctx: click.Context, as_json: bool, since: str | None) -> None:
    """Check every byte of the log: leaves against deposits, every tile, every checkpoint, cosignature and token.

    Prints one line per finding (`table/key: got X, want Y`) and exits 1 on any. An audit that finds
    nothing clears an integration halt.
    """
    from depository.audit import audit as run_audit
    from depository.audit import finish, last_passing_seq
    from depository.wiring import audit_trust

    config = _config(ctx)
    s = _services(ctx)
    try:
        since_seq = _since(s.engine, since, last_passing_seq)
        started = datetime.now(UTC)
        trust = audit_trust(config, s.keys)
        if sys.stderr.isatty() and not as_json:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("auditing", total=None)

                def progress(phase: str, done: int, total: int) -> None:
                    bar.update(task, description=phase, completed=done, total=total)

                rep = run_audit(s.engine, trust, since_seq=since_seq, progress=progress)
        else:
            rep = run_audit(s.engine, trust, since_seq=since_seq)
        finish(s.engine, rep, started)
    finally:
        s.close()
    if as_json:
        click.echo(json.dumps(rep.to_json(), indent=2))
    else:
        for line in rep.problems:
            click.echo(line)
        if rep.more_findings:
            click.echo(f"... and {rep.more_findings} more findings")
        click.echo(f"{rep.mode} audit from size {rep.from_size}: {rep.entries} entries, {rep.deposits} deposits, "
                   f"tree size {rep.tree_size}, {rep.tiles_checked} tiles, {rep.checkpoints} checkpoints, "
                   f"{rep.cosignatures} cosignatures, {rep.timestamps} tokens")
    if not rep.ok:
        click.echo(f"audit failed: {rep.finding_count} finding(s); first: {rep.problems[0]}", err=True)
        sys.exit(1)
    if not as_json:
        click.echo("audit ok" + ("; integration resumes" if rep.open_halts else ""))


def _since(engine: Any, since: str | None, last: Any) -> int | None:
    if since is None:
        return None
    if since == "last":
        seq = last(engine)
        if seq is None:
            raise click.ClickException("no earlier audit passed: run a full audit first")
        return int(seq)
    if not since.isdigit():
        raise click.ClickException(f"--since-checkpoint {since!r}: want a checkpoint seq or 'last'")
    return int(since)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The log's state: sizes, latest checkpoint, notarisation, integrity. Exits 1 while integration is halted."""
    from depository.integrity import log_status

    s = _services(ctx)
    try:
        st = log_status(s.engine, s.log.halts)
    finally:
        s.close()
    if as_json:
        click.echo(json.dumps(st, indent=2))
    else:
        cp = st["latest_checkpoint"]
        click.echo(f"tree size {st['tree_size']}, {st['pending']} pending; latest checkpoint "
                   + (f"seq {cp['seq']} size {cp['size']} at {cp['created_at']}" if cp else "none")
                   + f"; witnessed to {st['witnessed_size']}, timestamped to {st['timestamped_size']}")
        audit_ = st["last_audit"]
        click.echo("last audit: " + (f"{audit_['finished_at']}, size {audit_['tree_size']}, "
                                     f"{audit_['findings']} finding(s)" if audit_ else "never"))
        halt = st["halt"]
        if halt:
            click.echo(f"INTEGRATION HALTED since {halt['since']} at tree size {halt['tree_size']}: {halt['reason']}")
        else:
            click.echo("integration ok")
    if st["halt"]:
        sys.exit(1)


@click.group("log")
def log_group() -> None:
    """Operator commands for the log."""


@log_group.command("resume")
@click.option("--reason", required=True, help="Why integration may go on (recorded with your user name).")
@click.pass_context
def resume(ctx: click.Context, reason: str) -> None:
    """Resume integration after a halt without a clean audit (recorded and logged). Prefer `depository audit`."""
    s = _services(ctx)
    try:
        closed = s.log.halts.clear(f"operator {getpass.getuser()}", reason)
    finally:
        s.close()
    if not closed:
        click.echo("no halt is open; integration is running")
        return
    for h in closed:
        click.echo(f"resumed: halt at tree size {h.tree_size} ({h.reason}) cleared; reason recorded: {reason}")
