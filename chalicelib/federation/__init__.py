"""Federation (issue 15): this IdP as a relying party of upstream identity providers.

`upstream` speaks the protocol toward an upstream (OpenID Connect Core 1.0's authorization code flow,
or GitHub's OAuth 2.0 and REST API); `fetching` makes its HTTP requests through the SSRF guard and
caches what may be cached; `github` and `apple` hold what those two providers do their own way.
"""
