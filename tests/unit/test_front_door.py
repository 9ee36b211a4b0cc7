"""chalicelib/front_door.py: an HTTP API payload-1.0 event is dispatched to the route a REST API
would have named, with the same path parameters; REST events pass unchanged."""
from __future__ import annotations

import pytest

from chalicelib.front_door import GREEDY, match_route, strip_base_path, to_chalice_event

ROUTES = ["/", "/token", "/clients/{client_id}", "/clients/register", "/.well-known/openid-configuration", GREEDY]


@pytest.mark.parametrize(("path", "route", "params"), [
    ("/token", "/token", {}),
    ("/token/", "/token", {}),
    ("/", "/", {}),
    ("/clients/register", "/clients/register", {}),
    ("/clients/abc", "/clients/{client_id}", {"client_id": "abc"}),
    ("/nope", GREEDY, {"proxy": "nope"}),
    ("/clients/abc/extra", GREEDY, {"proxy": "clients/abc/extra"}),
])
def test_a_path_resolves_as_api_gateway_resolves_it(path, route, params):
    assert match_route(ROUTES, path) == (route, params)


def test_without_a_greedy_route_an_unknown_path_matches_nothing():
    assert match_route(["/token"], "/other") is None


def test_the_api_mapping_key_is_stripped_only_as_a_whole_segment():
    assert strip_base_path("/tenant/token", "/tenant") == "/token"
    assert strip_base_path("/tenant", "/tenant") == "/"
    assert strip_base_path("/tenants/token", "/tenant") == "/tenants/token"
    assert strip_base_path("/token", "") == "/token"


def http_api_event(path: str) -> dict:
    return {"version": "1.0", "resource": "$default", "path": path, "httpMethod": "GET", "pathParameters": None,
            "requestContext": {"resourcePath": "$default", "httpMethod": "GET", "path": path, "stage": "$default"}}


def test_an_http_api_event_names_the_chalice_route_and_its_parameters():
    event = to_chalice_event(http_api_event("/tenant/clients/abc"), ROUTES, "/tenant")
    assert event["resource"] == event["requestContext"]["resourcePath"] == "/clients/{client_id}"
    assert event["pathParameters"] == {"client_id": "abc"}
    assert event["path"] == "/tenant/clients/abc", "the request's path is not rewritten"


def test_a_rest_api_event_is_left_as_api_gateway_built_it():
    event = {"resource": "/{proxy+}", "path": "/token", "pathParameters": {"proxy": "token"},
             "requestContext": {"resourcePath": "/{proxy+}"}}
    assert to_chalice_event(event, ROUTES) is event
