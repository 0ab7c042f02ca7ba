"""cdn_core."""
