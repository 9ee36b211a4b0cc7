"""Signing keys: backends (Secrets Manager, KMS), the key ring (lifecycle, JWKS) and JWK helpers."""
