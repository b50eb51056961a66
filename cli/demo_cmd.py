"""`depository demo`: the whole flow on a fresh machine, no Redis or PostgreSQL needed."""

from __future__ import annotations

import click


@click.command()
def demo() -> None:
    """Run the demo."""
    raise click.ClickException("demo is being built")
