"""origin_shield."""
