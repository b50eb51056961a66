"""depository."""
