"""Memberships: a client's monthly plan, from its start until it ends."""
