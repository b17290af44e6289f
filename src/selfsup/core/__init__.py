"""Foundations every layer uses and that use no other part of selfsup: numeric precision,
progress display, atomic file writes, strict text reading, safe weights loading, one-line errors
and nearest-neighbour search."""
