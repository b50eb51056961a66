"""notary_bridge.errors: one root, one-line diagnostics that keep the cause."""

from __future__ import annotations

from notary_bridge.errors import NotaryError, TimestampError, WitnessError


def test_tree() -> None:
    assert issubclass(TimestampError, NotaryError)
    assert issubclass(WitnessError, NotaryError)
    assert not issubclass(WitnessError, TimestampError)


def test_diagnostics_is_one_line_with_cause() -> None:
    try:
        try:
            raise ConnectionRefusedError("connection\nrefused")
        except OSError as e:
            raise TimestampError("TSA http://127.0.0.1:9/: request failed") from e
    except TimestampError as err:
        assert err.diagnostics() == "TSA http://127.0.0.1:9/: request failed: connection refused"


def test_diagnostics_without_message_names_the_class() -> None:
    assert WitnessError().diagnostics() == "WitnessError"
