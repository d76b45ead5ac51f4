"""The queues in Redis: channel streams, per-key FIFOs, the delay set, dead letters."""
