"""Errors of the `evidence` package (pure formats, Merkle math, offline verification).

    EvidenceError                 root; `diagnostics()` is what the CLI prints
    ├── FormatError               text or bytes that do not parse (a note, a key, a proof, a leaf)
    ├── FontError                 a font the packet must embed is not installed
    └── VerificationError         parsed fine, but a check failed (signature, proof, imprint)
        ├── ProofError            a Merkle inclusion/consistency proof does not verify
        │   └── RootMismatch      a recomputed root is not the trusted one (`got`, `want`)
        ├── TileMismatch          a stored tile's inner nodes do not rehash from its hashes
        └── SignatureError        a note, cosignature or token signature does not verify
"""

from __future__ import annotations


class EvidenceError(Exception):
    """Root of every error raised by `evidence`."""

    def diagnostics(self) -> str:
        """One line fit for a CLI user: what failed and, where known, got/want."""
        return str(self) or type(self).__name__


class FormatError(EvidenceError):
    """Input does not follow the wire format it claims to be."""


class FontError(EvidenceError):
    """A packet cannot be laid out: a font it must embed (archival PDFs embed every font) is missing."""


class VerificationError(EvidenceError):
    """Input parsed, but does not verify."""


class ProofError(VerificationError):
    """A Merkle proof does not lead to the expected root (message says got X, want Y)."""


class SignatureError(VerificationError):
    """A signature does not verify against the given key."""


class RootMismatch(ProofError):
    """A tree root recomputed from stored or proven data is not the root it must equal.

    `got` is the recomputed root, `want` the signed (or otherwise trusted) one; `what` names the tree.
    """

    def __init__(self, what: str, got: bytes, want: bytes) -> None:
        super().__init__(f"{what}: got root {got.hex()}, want {want.hex()}")
        self.what = what
        self.got = got
        self.want = want


class TileMismatch(VerificationError):
    """A stored tile's inner nodes do not rehash from its served hashes (the tile was altered)."""
