"""Live publishes: who owns each stream key while it is live (and, later, the session ledger)."""
