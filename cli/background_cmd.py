"""`depository background`: the integrator, the notary and the monitoring scheduler in this process.

`depository serve` runs the same loop as a supervised sidecar; this command is for layouts that run API
servers (`depository serve --background none`) and the background process as separate units.
"""

from __future__ import annotations

import sys

import click


@click.command()
@click.pass_context
def background(ctx: click.Context) -> None:
    """Run the background work (integrator, notary, monitoring) until SIGTERM/SIGINT."""
    from depository.background import run_background
    from depository.config import load_config

    config = load_config(home=ctx.find_root().obj.get("home"))
    status = run_background(config)
    if status:
        sys.exit(status)
