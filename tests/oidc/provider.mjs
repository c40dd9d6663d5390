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
//     OIDC_UI_REDIRECT      when set, the browser sign-in client `ordertrace-ui` exists with this
//                           redirect URI (the gateway's https://.../auth/callback)
//     OIDC_UI_POST_LOGOUT   its post-logout redirect URI
//     OIDC_UI_SECRET        its client secret (default "ui-secret")
//     OIDC_UI_AT_TTL        seconds its access tokens live (default 300; short ones exercise the
//                           gateway's refresher)
//     OIDC_TOKEN_TTL        seconds the service accounts' tokens live (default 300; the demo's
//                           CLI token lives an hour)
//     OIDC_ROLES_FILE       when set and present, JSON {"user": [roles]} read at every token the
//                           users get, replacing their roles (a withdrawal seen at the refresh)
//     OIDC_TOKENS_FILE      when set, every token the token endpoint issues is appended to this
//                           file (mode 0600), one per line, so that a test can check that none of
//                           them reaches a log; for tests only
//
// Clients (client_credentials, secret "secret"): svc-dev (Developer), svc-devops (DevOps),
// svc-sales (Sales), svc-none (no role) and other-app (its tokens carry another audience).
// Browser sign-in (ordertrace-ui, confidential, client_secret_basic, authorization code with
// PKCE, refresh tokens): the provider's own development login and consent pages, where any
// password is accepted for the users alice (Developer), dave (DevOps), sam (Sales) and nora (no
// role).  Their roles go, in OIDC_ROLE_SHAPE, into their JWT access tokens for the API
// (audience OIDC_AUDIENCE, the resource indicator the gateway sends), with `name`.
// Prints "READY <port>" when listening and "JWKS_REQUEST" for every request to /jwks.
import { generateKeyPairSync } from 'node:crypto';
import {
  appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync,
} from 'node:fs';
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
// The people who sign in through a browser: id → display name and roles.
const USERS = {
  alice: { name: 'Alice Developer', roles: ['Developer'] },
  dave: { name: 'Dave DevOps', roles: ['DevOps'] },
  sam: { name: 'Sam Sales', roles: ['Sales'] },
  nora: { name: 'Nora Noroles', roles: [] },
};
const UI_CLIENT = 'ordertrace-ui';
const uiRedirect = process.env.OIDC_UI_REDIRECT || '';
const uiTtl = Number(process.env.OIDC_UI_AT_TTL || 300);
const serviceTtl = Number(process.env.OIDC_TOKEN_TTL || 300);
const rolesFile = process.env.OIDC_ROLES_FILE || '';
function userRoles(user) {
  if (rolesFile && existsSync(rolesFile)) {
    const override = JSON.parse(readFileSync(rolesFile, 'utf8'));
    if (Array.isArray(override[user])) return override[user];
  }
  return (USERS[user] || { roles: [] }).roles;
}

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
if (uiRedirect) {
  clients.push({
    client_id: UI_CLIENT,
    client_secret: process.env.OIDC_UI_SECRET || 'ui-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [uiRedirect],
    post_logout_redirect_uris: process.env.OIDC_UI_POST_LOGOUT ? [process.env.OIDC_UI_POST_LOGOUT]
      : [],
  });
}

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
  // A user known by the login name typed into the development login page (any password).
  findAccount: (ctx, sub) => (USERS[sub] ? {
    accountId: sub,
    claims: () => ({ sub, name: USERS[sub].name }),
  } : undefined),
  claims: { openid: ['sub'], profile: ['name'] },
  // The UI client gets a refresh token with every code, without asking for offline_access.
  issueRefreshToken: (ctx, client) => client.clientId === UI_CLIENT
    && client.grantTypeAllowed('refresh_token'),
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => ({
        scope: 'orders:read',
        audience: client.clientId === 'other-app' ? 'urn:other:api' : audience,
        accessTokenTTL: client.clientId === UI_CLIENT ? uiTtl : serviceTtl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  ttl: { ClientCredentials: serviceTtl },
  // A user's token carries the user's roles and name, a client-credentials token its client's.
  extraTokenClaims: (ctx, token) => (token.accountId
    ? { ...roleClaims(userRoles(token.accountId)), name: (USERS[token.accountId] || {}).name }
    : roleClaims(ROLES[token.clientId] || [])),
});
const tokensFile = process.env.OIDC_TOKENS_FILE || '';
provider.use(async (ctx, next) => {
  if (ctx.path === '/jwks') console.log('JWKS_REQUEST');
  await next();
  if (tokensFile && ctx.path === '/token' && ctx.body && typeof ctx.body === 'object') {
    for (const k of ['access_token', 'refresh_token', 'id_token']) {
      if (typeof ctx.body[k] === 'string') appendFileSync(tokensFile, `${ctx.body[k]}\n`, { mode: 0o600 });
    }
  }
});
server.on('request', provider.callback());
console.log(`READY ${actualPort}`);
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
