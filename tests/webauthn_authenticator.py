"""A software WebAuthn authenticator for tests: an EC P-256 key (cryptography) and the bytes a
browser would send (authenticatorData, clientDataJSON, attestationObject built with cbor2), so
tests can drive registration and sign-in without a browser. Test scaffolding only: production
never builds or parses these itself (chalicelib/accounts/passkeys.py uses py_webauthn).

Layouts: authenticatorData WebAuthn §6.1, attested credential data §6.5.1, COSE_Key (EC2, ES256)
RFC 9053 §7.1.1, "none" attestation §8.7, clientDataJSON §5.8.1.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    rp_id: str = "localhost"
    origin: str = "http://localhost:8000"
    user_verified: bool = True
    backup_eligible: bool = False
    #: None: a counter that grows by one per signature; a number: always report it (0: synced passkeys).
    fixed_count: int | None = None
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    user_handle: bytes | None = None
    count: int = 0

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _flags(self, *extra: int) -> int:
        flags = UP | (UV if self.user_verified else 0) | (BE if self.backup_eligible else 0)
        for bit in extra:
            flags |= bit
        return flags

    def _next_count(self) -> int:
        if self.fixed_count is not None:
            return self.fixed_count
        self.count += 1
        return self.count

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()

    def create(self, options: dict, *, origin: str | None = None, rp_id: str | None = None) -> str:
        """The JSON of navigator.credentials.create() for PublicKeyCredentialCreationOptions JSON."""
        self.user_handle = unb64(options["user"]["id"])
        rp_hash = hashlib.sha256((rp_id or options["rp"]["id"]).encode()).digest()
        attested = (b"\x00" * 16 + struct.pack(">H", len(self.credential_id)) + self.credential_id
                    + self.cose_key())
        auth_data = rp_hash + bytes([self._flags(AT)]) + struct.pack(">I", self._next_count()) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return json.dumps({"id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key",
                           "response": {"clientDataJSON": b64(client_data), "attestationObject": b64(attestation),
                                        "transports": ["internal"]},
                           "clientExtensionResults": {}, "authenticatorAttachment": "platform"})

    def get(self, options: dict, *, origin: str | None = None, rp_id: str | None = None,
            user_handle: bytes | None = None, credential_id: bytes | None = None) -> str:
        """The JSON of navigator.credentials.get() for PublicKeyCredentialRequestOptions JSON."""
        rp_hash = hashlib.sha256((rp_id or options.get("rpId") or self.rp_id).encode()).digest()
        auth_data = rp_hash + bytes([self._flags()]) + struct.pack(">I", self._next_count())
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        credential = credential_id or self.credential_id
        handle = user_handle if user_handle is not None else self.user_handle
        return json.dumps({"id": b64(credential), "rawId": b64(credential), "type": "public-key",
                           "response": {"clientDataJSON": b64(client_data), "authenticatorData": b64(auth_data),
                                        "signature": b64(signature),
                                        "userHandle": b64(handle) if handle is not None else None},
                           "clientExtensionResults": {}, "authenticatorAttachment": "platform"})
