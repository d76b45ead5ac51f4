"""Pure domain logic: no I/O lives here."""
