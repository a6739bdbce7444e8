"""Webhooks: event payloads (the outbox body), and later signing and delivery."""
