// A real OpenID Connect provider (the npm package oidc-provider) for runwire's tests of outside
// issuers: two issuers on free loopback ports, the one runwire trusts and a foreign one with the
// same configuration (keys of its own). Started by tests/outside_issuer.py; prints one JSON line,
// {"issuer": URL, "foreign": URL}, and runs until its standard input closes.
//
// Clients register themselves (dynamic registration, RFC 7591), each a new `sub`, and get JWT
// access tokens by the client-credentials grant for a resource indicator (RFC 8707):
//   urn:runwire:api    audience AUDIENCE, RS256 (the provider's default)
//   urn:runwire:es256  audience AUDIENCE, ES256
//   urn:runwire:other  audience "someone-else"
//   urn:runwire:brief  audience AUDIENCE, expires a second after it is issued
//   urn:runwire:hs256  audience AUDIENCE, HS256 keyed with the RSA key's public PEM and named by
//                      its kid: the algorithm-confusion forgery, made by the provider itself
// A client registered with `runwire_test_email` (and `runwire_test_email_verified`) gets them
// as the `email` and `email_verified` claims of its tokens.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const AUDIENCE = process.env.OIDC_TEST_AUDIENCE || 'runwire-api';

function keys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsaKid = `rsa-${randomUUID()}`;
  return {
    rsaKid,
    rsaPublicPem: rsa.publicKey.export({ type: 'spki', format: 'pem' }),
    // No `alg` on the keys, as Entra ID publishes them: the verifier decides.
    jwks: [
      { ...rsa.privateKey.export({ format: 'jwk' }), kid: rsaKid, use: 'sig' },
      { ...ec.privateKey.export({ format: 'jwk' }), kid: `ec-${randomUUID()}`, use: 'sig' },
    ],
  };
}

function resources(own) {
  return {
    'urn:runwire:api': { audience: AUDIENCE },
    'urn:runwire:es256': { audience: AUDIENCE, jwt: { sign: { alg: 'ES256' } } },
    'urn:runwire:other': { audience: 'someone-else' },
    'urn:runwire:brief': { audience: AUDIENCE, accessTokenTTL: 1 },
    'urn:runwire:hs256': {
      audience: AUDIENCE,
      jwt: { sign: { alg: 'HS256', key: Buffer.from(own.rsaPublicPem), kid: own.rsaKid } },
    },
  };
}

async function start() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const own = keys();
  const known = resources(own);
  const provider = new Provider(issuer, {
    jwks: { keys: own.jwks },
    cookies: { keys: [randomUUID()] },
    extraClientMetadata: { properties: ['runwire_test_email', 'runwire_test_email_verified'] },
    async extraTokenClaims(ctx) {
      const client = ctx.oidc.client;
      if (!client?.runwire_test_email) return undefined;
      const claims = { email: client.runwire_test_email };
      if (client.runwire_test_email_verified !== undefined) {
        claims.email_verified = client.runwire_test_email_verified;
      }
      return claims;
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      registration: { enabled: true },
      resourceIndicators: {
        enabled: true,
        async getResourceServerInfo(ctx, indicator) {
          const found = known[indicator];
          if (!found) throw new errors.InvalidTarget();
          return { scope: 'chat', accessTokenFormat: 'jwt', accessTokenTTL: 300, ...found };
        },
      },
    },
  });
  server.on('request', provider.callback());
  return { issuer, server };
}

const trusted = await start();
const foreign = await start();
process.stdout.write(`${JSON.stringify({ issuer: trusted.issuer, foreign: foreign.issuer })}\n`);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
