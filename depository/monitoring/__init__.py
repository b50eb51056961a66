"""Monitoring: find copies of registered works on fetched suspect pages.

``fingerprint`` turns image bytes and text into perceptual fingerprints (pure, no I/O); ``index`` looks a
suspect's fingerprints up among all registered works without scanning them one by one. Fetching pages and
storing fingerprints belong to the service layer, which passes bytes and rows in.
"""

from __future__ import annotations
