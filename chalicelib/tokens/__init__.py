"""Tokens: JWT encoding through a Signer, and (later) pure claim builders."""
