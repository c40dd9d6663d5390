// A real OpenID provider (npm oidc-provider 8.8.1) on loopback for the gateway's API sign-in
// tests, started and stopped by pid from C++ (tests/support/oidc_provider_process.h).
//
//   node provider.mjs   with the environment:
//     OIDC_PORT       port on 127.0.0.1 (0: any; the chosen one is printed)
//     OIDC_KEYS_DIR   directory of the private signing keys <kid>.json (RSA 2048, made on first
//                     use and kept, so that a restart with another key list is a rotation)
//     OIDC_KEYS       key ids in JWKS order, e.g. "k1" or "k2,k1"; the first RSA key signs
//     OIDC_AUDIENCE   the API's audience (default urn:ordertrace:api)
//     OIDC_ROLE_SHAPE where the roles go in access tokens: keycloak (realm_access.roles),
//                     entra (roles), string (role: "X", ADFS-like), groups (group GUIDs),
//                     overage (Entra's _claim_names.groups instead of groups)
//
// Clients (client_credentials, secret "secret"): svc-dev (Developer), svc-devops (DevOps),
// svc-sales (Sales), svc-none (no role) and other-app (its tokens carry another audience).
// Prints "READY <port>" when listening and "JWKS_REQUEST" for every request to /jwks.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT || 0);
const keysDir = process.env.OIDC_KEYS_DIR || '.';
const kids = (process.env.OIDC_KEYS || 'k1').split(',').filter(Boolean);
const audience = process.env.OIDC_AUDIENCE || 'urn:ordertrace:api';
const shape = process.env.OIDC_ROLE_SHAPE || 'entra';

// Entra sends group object ids, which auth.roles.map maps to the gateway's roles.
export const GROUP_IDS = {
  Developer: '1b2c3d4e-0000-4000-8000-000000000001',
  DevOps: '1b2c3d4e-0000-4000-8000-000000000002',
  Sales: '1b2c3d4e-0000-4000-8000-000000000003',
};
const ROLES = { 'svc-dev': ['Developer'], 'svc-devops': ['DevOps'], 'svc-sales': ['Sales'],
  'svc-none': [], 'other-app': ['Developer'] };

function key(kid) {
  mkdirSync(keysDir, { recursive: true });
  const file = join(keysDir, `${kid}.json`);
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(file, JSON.stringify({ ...privateKey.export({ format: 'jwk' }), kid, use: 'sig' }),
      { mode: 0o600 });
  }
  return JSON.parse(readFileSync(file, 'utf8'));
}

function roleClaims(roles) {
  switch (shape) {
    case 'keycloak': return { realm_access: { roles: ['offline_access', ...roles] } };
    case 'string': return roles.length ? { role: roles[0] } : {};
    case 'groups': return { groups: roles.map((r) => GROUP_IDS[r]) };
    case 'overage': return { _claim_names: { groups: 'src1' },
      _claim_sources: { src1: { endpoint: 'https://graph.example/v1.0/users/x/getMemberObjects' } } };
    default: return { roles };
  }
}

const clients = Object.keys(ROLES).map((id) => ({
  client_id: id, client_secret: 'secret', grant_types: ['client_credentials'],
  redirect_uris: [], response_types: [], token_endpoint_auth_method: 'client_secret_basic',
}));

const issuerPort = port;
const server = await new Promise((resolve) => {
  // Listen first so that port 0 resolves to the issuer's real port.
  import('node:http').then(({ createServer }) => {
    const s = createServer();
    s.listen(issuerPort, '127.0.0.1', () => resolve(s));
  });
});
const actualPort = server.address().port;
const provider = new Provider(`http://127.0.0.1:${actualPort}`, {
  clients,
  jwks: { keys: kids.map(key) },
  cookies: { keys: ['test-cookie-key-not-secret'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => ({
        scope: 'orders:read',
        audience: client.clientId === 'other-app' ? 'urn:other:api' : audience,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  ttl: { ClientCredentials: 300 },
  extraTokenClaims: (ctx, token) => roleClaims(ROLES[token.clientId] || []),
});
provider.use(async (ctx, next) => {
  if (ctx.path === '/jwks') console.log('JWKS_REQUEST');
  await next();
});
server.on('request', provider.callback());
console.log(`READY ${actualPort}`);
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
