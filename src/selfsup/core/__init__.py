"""Foundations every layer uses and that use no other part of selfsup: numeric precision,
progress display, atomic file writes and nearest-neighbour search."""
