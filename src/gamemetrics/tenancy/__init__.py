"""Tenants, games and write keys: who may send events, and for which game."""
