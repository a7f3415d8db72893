"""Alembic migrations of the store's schema (env.py runs them; versions/ holds them)."""
