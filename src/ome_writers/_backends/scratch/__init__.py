"""scratch format: see its modules."""
