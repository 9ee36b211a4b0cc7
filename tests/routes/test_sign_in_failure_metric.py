"""The sign-in failure alarm (infra/template.py) counts log lines: the lines a wrong password and a
lock-out really write must be the ones its metric filter matches."""
from __future__ import annotations

import re

from tests.routes.test_login_throttle import lock_out


def test_the_sign_in_failure_metric_filter_matches_what_wrong_passwords_and_lock_outs_log(
        http, alice, public_client, idp_log):
    from infra.template import SIGN_IN_FAILURE_PATTERN

    lock_out(http, public_client.client_id)

    counted = set(re.findall(r'\$\.msg = "([^"]+)"', SIGN_IN_FAILURE_PATTERN))
    logged = [entry["msg"] for entry in idp_log() if entry["msg"] in counted]
    assert counted == {"sign-in failed", "sign-in throttled"}
    assert set(logged) == counted and len(logged) > 1
