"""Clients: profiles (protected health information), preferences and notes."""
