"""`postline bench`: throughput and latency of the whole service, measured."""
