"""OAuth 2.1 / OpenID Connect core logic: no Chalice imports below this package's callers."""
