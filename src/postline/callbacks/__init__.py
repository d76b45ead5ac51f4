"""Client callbacks: signed POSTs of the message to its `callback_url` (Standard Webhooks)."""
