"""A JSON 404 for every path no other route claims.

API Gateway matches specific resources before a greedy `{proxy+}` one, so this only catches
unknown paths, which API Gateway would otherwise answer with 403 "Missing Authentication Token".
"""
from __future__ import annotations

from chalice import Blueprint

from ..errors import NotFound
from ..web import ALL_METHODS, ANY_BODY, endpoint

bp = Blueprint(__name__)


@bp.route("/{proxy+}", methods=list(ALL_METHODS), content_types=ANY_BODY)
@endpoint(bp)
def not_found(**_path):
    raise NotFound("no such endpoint")


@bp.route("/", methods=list(ALL_METHODS), content_types=ANY_BODY)
@endpoint(bp)
def root():
    raise NotFound("no such endpoint; see /.well-known/openid-configuration")
