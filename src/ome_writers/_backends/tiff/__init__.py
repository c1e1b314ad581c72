"""tiff format: see its modules."""
