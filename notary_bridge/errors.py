"""Errors of the `notary_bridge` package (clients and servers of outside notaries: TSAs, witnesses).

    NotaryError                   root; `diagnostics()` is the one line the CLI prints
    ├── TimestampError            a TSA could not be reached, refused, or answered with a bad token
    │                             (wrong nonce, imprint or certificate); transport failures are chained
    │                             (`raise TimestampError(...) from e`)
    └── WitnessError              a witness could not be reached or broke the tlog-witness protocol

Callers catch `NotaryError` when any outside party failing should degrade the same way (the log keeps
publishing unstamped, uncosigned checkpoints and retries later), and the subclasses when they care which.
"""

from __future__ import annotations


class NotaryError(Exception):
    """Root of every error raised by `notary_bridge`."""

    def diagnostics(self) -> str:
        """One line fit for a CLI user: what failed and, where known, got/want and the cause."""
        text = " ".join((str(self) or type(self).__name__).split())
        cause = self.__cause__
        if cause is not None:
            reason = " ".join(str(cause).split()) or type(cause).__name__
            text = f"{text}: {reason}"
        return text


class TimestampError(NotaryError):
    """A time-stamping authority failed: transport, refusal (PKIStatus), or a token that does not verify."""


class WitnessError(NotaryError):
    """A witness failed: transport, or an answer outside the C2SP tlog-witness protocol."""
