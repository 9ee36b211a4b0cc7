"""Everything the IdP's Lambda needs. Chalice packages only app.py and this package."""
