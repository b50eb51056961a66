"""`depository demo`: the whole flow on a fresh machine, no Redis or PostgreSQL needed."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="Where to write the samples, packet.pdf, proof.json and trust/.")
@click.option("--once", is_flag=True, help="Exit after verifying the packet (0 if every check passes).")
def demo(out: Path, once: bool) -> None:
    """Start a TSA, three witnesses (2 of 3) and the API on 127.0.0.1; deposit samples; prove and verify."""
    from cli.proof_cmds import _table
    from depository.demo import DemoResult, run_demo
    from evidence.summary import summarize

    def report(result: DemoResult) -> None:
        _table(result.checks, out / "packet.pdf", True, summarize(result.checks, file_given=True))
        click.echo(f"\nwritten to {out}/: lease-agreement.pdf invoice.pdf copyright-work.png packet.pdf "
                   "proof.json trust/")
        click.echo(f"check it yourself: depository verify {out}/packet.pdf --file {out}/lease-agreement.pdf "
                   f"--trust {out}/trust")

    result = run_demo(out, once=once, echo=click.echo, on_verified=report)
    if not result.ok:
        raise click.ClickException("the demo's own packet did not verify")
