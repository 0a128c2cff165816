"""Internal package: not part of the public API."""
