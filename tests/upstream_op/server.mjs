// An upstream OpenID Provider for the federation tests: panva's oidc-provider (OpenID Certified, MIT),
// a protocol implementation this project does not share a line with.
//
// Environment: PORT (loopback port), ISSUER (e.g. http://127.0.0.1:PORT), CLIENTS (JSON array of
// client metadata, as oidc-provider's `clients` configuration takes it).
//
// Sign-in uses oidc-provider's development interactions: any login name and any password. The account's
// claims derive from the login name, so a test chooses them by what it types: login "alice@acme.test"
// is the subject "alice@acme.test" with that email, verified; a login containing "+unverified" has
// email_verified false. Every claim scoped by "email" or "profile" is released through userinfo only
// (conformIdTokenClaims), so the relying party's userinfo path is exercised too.
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = process.env.ISSUER;
const clients = JSON.parse(process.env.CLIENTS || '[]');

function signingKey(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: `${alg.toLowerCase()}-1`, alg, use: 'sig' };
}

function account(login) {
  const name = login.split('@')[0].replace('+unverified', '');
  return {
    accountId: login,
    async claims() {
      return {
        sub: login,
        email: login,
        email_verified: !login.includes('+unverified'),
        name: name.charAt(0).toUpperCase() + name.slice(1),
        given_name: name,
        locale: 'en',
      };
    },
  };
}

const provider = new Provider(issuer, {
  clients,
  jwks: {
    keys: [
      signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
      signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
    ],
  },
  findAccount: (ctx, id) => account(id),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'locale'],
  },
  cookies: { keys: ['test-only-cookie-signing-key'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
});

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`upstream OP listening on ${issuer}\n`);
});
