"""Route modules, one per area: messages, operations."""
