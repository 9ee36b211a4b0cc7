"""Self-service accounts (issue 12): sign-up, email verification, password reset, invitations, the
account page. The pages are in chalicelib/blueprints; the rules are here; storage in chalicelib/storage."""
