"""Shared plumbing: database sessions, errors, clock, ids, money, time zones, interval sets."""
