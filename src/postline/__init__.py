"""Postline: a self-hosted messaging service."""
