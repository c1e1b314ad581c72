"""Format engines behind ``create_stream``; see ``_base`` for the contract."""
