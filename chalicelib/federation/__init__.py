"""Signing in through upstream identity providers (issue 15)."""
