"""RFC 4998 evidence records: `renew` (make missing records, timestamp and hash-tree renewal),
`evidence-record` (write one deposit's record) and `verify-record` (offline, no home needed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import click


@click.command()
@click.option("--hash", "hash_algorithm", help="Also renew the hash tree with this algorithm (e.g. sha512).")
@click.option("--within-days", default=180, show_default=True, type=click.IntRange(0, 36500),
              help="Renew the timestamp of records whose newest TSA certificate expires within this many days.")
@click.pass_context
def renew(ctx: click.Context, hash_algorithm: str | None, within_days: int) -> None:
    """Make missing evidence records and renew old ones (RFC 4998 §5); prints what was done as JSON."""
    from depository.config import load_config
    from depository.evidence_records import evidence_records_for
    from depository.wiring import build_services
    from evidence.timestamp import normalize_hash_name

    alg = normalize_hash_name(hash_algorithm) if hash_algorithm else None
    config = load_config(home=ctx.obj.get("home") if ctx.obj else None)
    s = build_services(config, notary=False)
    try:
        report = evidence_records_for(s).renew(within=dt.timedelta(days=within_days), hash_algorithm=alg)
    finally:
        s.close()
    click.echo(json.dumps(report.to_json()))


@click.command("evidence-record")
@click.argument("deposit_id")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the DER EvidenceRecord.")
@click.pass_context
def evidence_record(ctx: click.Context, deposit_id: str, output: Path) -> None:
    """Write DEPOSIT_ID's RFC 4998 evidence record (made now if none exists yet)."""
    from cli.proof_cmds import _find
    from depository.config import load_config
    from depository.evidence_records import evidence_records_for
    from depository.wiring import build_services

    config = load_config(home=ctx.obj.get("home") if ctx.obj else None)
    s = build_services(config, notary=False)
    try:
        der = evidence_records_for(s).get(_find(s, deposit_id, None))
    finally:
        s.close()
    output.write_bytes(der)
    click.echo(json.dumps({"evidence_record": str(output), "deposit": deposit_id, "bytes": len(der)}))


@click.command("verify-record")
@click.argument("record", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--file", "original", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The original document the record is for.")
@click.option("--ca", "cas", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A TSA root certificate (PEM); repeat for the roots of earlier TSAs.")
@click.option("--json", "as_json", is_flag=True, help="Print every verified stamp as JSON.")
def verify_record(record: Path, original: Path, cas: tuple[Path, ...], as_json: bool) -> None:
    """Verify an RFC 4998 evidence record for a file, offline; exit 0 only if every stamp verifies."""
    from evidence.ers import parse_record
    from evidence.ers import verify_record as verify

    der = record.read_bytes()
    data = original.read_bytes()
    algs = parse_record(der).digest_algorithms
    reports = verify(der, {a: hashlib.new(a, data).digest() for a in algs}, [c.read_bytes() for c in cas])
    if as_json:
        click.echo(json.dumps({"ok": True, "stamps": [
            {"chain": r.chain, "index": r.index, "hash": r.hash_algorithm, "gen_time": r.gen_time.isoformat(),
             "tsa": r.tsa_name, "tsa_not_after": r.tsa_not_after.isoformat() if r.tsa_not_after else None}
            for r in reports]}))
    else:
        last = reports[-1]
        click.echo(f"evidence record OK: {len(reports)} stamp(s) in {last.chain + 1} chain(s); "
                   f"first {reports[0].gen_time.isoformat()}, newest {last.gen_time.isoformat()} "
                   f"({last.hash_algorithm})")
