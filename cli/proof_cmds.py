"""Evidence packets: generate (`proof`) and check offline (`verify`)."""

from __future__ import annotations

import click


@click.command()
def proof() -> None:
    """Write the court-ready evidence packet (PDF) of one or more deposits."""
    raise click.ClickException("evidence packets are not available in this build")


@click.command()
def verify() -> None:
    """Check an evidence packet offline."""
    raise click.ClickException("offline verification is not available in this build")
