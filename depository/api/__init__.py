"""HTTP API: one blueprint per resource; errors become RFC 9457 problem+json (see problems.py)."""
