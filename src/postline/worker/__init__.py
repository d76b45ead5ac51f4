"""The worker: reads the channel streams and delivers through the providers."""
