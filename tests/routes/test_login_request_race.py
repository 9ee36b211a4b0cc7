"""Sign-in racing another tab: the authorization request the sign-in page was opened for is
finished (a code issued, or an error sent) while the password is being checked. The sign-in still
happens, and the browser is told the request is over instead of being sent on with it."""
from __future__ import annotations

import pytest

from tests.routes.flow import Browser, authorize_query, hidden


@pytest.mark.parametrize("prompt", [None, "login"])
def test_a_request_finished_in_another_tab_during_sign_in_ends_on_the_expired_page_signed_in(
        http, public_client, alice, monkeypatch, prompt):
    """With prompt=login the sign-in records on the request which session signed in for it (an
    update under the condition that the request exists); otherwise it only checks that it exists.
    Either way a request gone meanwhile is not revived, and the sign-in is written without it."""
    from chalicelib.oauth import login
    from chalicelib.storage.models import AuthorizationRequestModel

    browser = Browser(http)
    location = browser.get("/authorize?" + authorize_query(public_client.client_id, prompt=prompt)).headers["Location"]
    page = browser.get(location)
    request_id = hidden(page.body, "request_id")
    anonymous = browser.cookies["idp_session"]
    real_authenticate = login.authenticate

    def authenticate_while_another_tab_finishes_the_request(*args):
        user = real_authenticate(*args)
        AuthorizationRequestModel(request_id=request_id).delete()
        return user

    monkeypatch.setattr(login, "authenticate", authenticate_while_another_tab_finishes_the_request)
    response = browser.post("/login", {"request_id": request_id, "csrf_token": hidden(page.body, "csrf_token"),
                                       "username": "alice@example.com", "password": "correct horse battery"})

    assert response.status_code == 400 and b"invalid_request" in response.body
    assert browser.cookies["idp_session"] != anonymous and "idp_device" in browser.cookies
    with pytest.raises(AuthorizationRequestModel.DoesNotExist):
        AuthorizationRequestModel.get(request_id, consistent_read=True)
    again = browser.get("/authorize?" + authorize_query(public_client.client_id)).headers["Location"]
    assert again.startswith("/consent"), "signed in: no sign-in page this time"
