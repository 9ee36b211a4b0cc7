"""Abuse limits on what sends email: sign-up, resending a verification, password reset, email change.

Each attempt counts, in one all-or-none DynamoDB transaction (storage/throttles.add_to_all), against
three fixed one-hour windows:
- the client's address (an IPv6 client: its /64; oauth/throttle.address_key), per action;
- the email address typed, per action;
- every email sent to that address, whatever the action: whoever types a victim's address cannot
  make us send them more than EMAILS_PER_ADDRESS_PER_HOUR messages, however the attempts are mixed.

Email addresses appear in counter keys only as a SHA-256, so the throttles table holds no addresses.
A refused attempt counts nowhere. The caller answers 429 with Retry-After, on a page shaped like
its success page where the answer must not say whether an address has an account.
"""
from __future__ import annotations

from ..config import settings
from ..hashing import sha256_hex
from ..log import now

WINDOW_SECONDS = 3600
ACTIONS = ("signup", "resend", "reset", "email_change", "link_identity")


def allow(action: str, *, email: str, ip: str) -> int | None:
    """Count one `action` for `email` from `ip`. None when allowed; else the seconds until the
    window ends (Retry-After)."""
    from ..oauth.throttle import address_key, window_key
    from ..storage.throttles import Counter, add_to_all

    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    s = settings()
    at = now()
    address = sha256_hex(email)
    counters = [
        Counter(window_key(f"{action}-ip", address_key(ip), WINDOW_SECONDS, at), s.account_actions_per_ip),
        Counter(window_key(f"{action}-email", address, WINDOW_SECONDS, at), s.account_actions_per_address),
        Counter(window_key("mail", address, WINDOW_SECONDS, at), s.emails_per_address_per_hour),
    ]
    if not add_to_all(counters, WINDOW_SECONDS):
        return None
    return WINDOW_SECONDS - at % WINDOW_SECONDS
