"""zarr format: see its modules."""
