"""Federation (issue 15): the IdP as a relying party of upstream identity providers (OpenID
Connect, and GitHub's OAuth 2.0), staying the single issuer its apps trust."""
