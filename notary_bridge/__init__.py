"""notary_bridge."""
