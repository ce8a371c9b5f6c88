"""Persistence: the only package that speaks SQL (the session ledger lands here)."""
