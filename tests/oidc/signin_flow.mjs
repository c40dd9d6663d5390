// A browser, played by Node 20's fetch with a cookie jar, that signs in to the gateway through
// the real OpenID provider of tests/oidc (provider.mjs, its development login and consent pages)
// and then runs the steps it is given.  Used by tests/oidc/signin_test.cc.
//
//   node signin_flow.mjs --gateway https://127.0.0.1:PORT --user alice [options] [steps...]
//     --return-to PATH     the return_to of /auth/login (default /ui/stuck)
//     --tamper-state       change the state the IdP sends back before the callback
//     --cancel             press "Cancel" on the IdP's login page (the IdP answers the callback
//                          with error=access_denied)
//     --no-login-cookie    send the callback without the login cookie (a victim's browser made to
//                          finish an attacker's sign-in: login CSRF)
//     --secrets-file F     append every cookie value, code and state this browser saw to F (mode
//                          0600), one a line, so that the test can check that none reaches a log
//   steps, run in order after the callback:
//     get:PATH             GET PATH with the browser's cookies
//     get-old:PATH         GET PATH with the session cookie as the callback set it (after a logout)
//     logout               POST /auth/logout without Origin (as a forged cross-site form would)
//     logout:ORIGIN        POST /auth/logout with Origin: ORIGIN and Sec-Fetch-Site accordingly
//     replay               the same callback again, with the same login cookie
//     sleep:MS             wait MS milliseconds (the gateway's refresher runs meanwhile)
//
//   node signin_flow.mjs --idp-only --issuer URL --redirect-uri URI --user alice
//     plays the gateway's part too (authorization request with PKCE, code exchange with the UI
//     client's secret, env OIDC_UI_SECRET) to check the provider alone.
//
// HTTPS trusts the CA in NODE_EXTRA_CA_CERTS.  Output: one JSON object per line and step.
// Never prints a cookie, code or token value: lengths, names and attributes only.
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = { returnTo: '/ui/stuck', steps: [] };
for (let i = 0; i < args.length; ++i) {
  const a = args[i];
  const next = () => args[++i];
  if (a === '--gateway') opt.gateway = next();
  else if (a === '--user') opt.user = next();
  else if (a === '--return-to') opt.returnTo = next();
  else if (a === '--tamper-state') opt.tamperState = true;
  else if (a === '--no-login-cookie') opt.noLoginCookie = true;
  else if (a === '--cancel') opt.cancel = true;
  else if (a === '--secrets-file') opt.secretsFile = next();
  else if (a === '--idp-only') opt.idpOnly = true;
  else if (a === '--issuer') opt.issuer = next();
  else if (a === '--redirect-uri') opt.redirectUri = next();
  else opt.steps.push(a);
}

function out(obj) { console.log(JSON.stringify(obj)); }
function fail(step, message) {
  out({ step, error: message });
  process.exit(1);
}
function remember(value) {
  if (opt.secretsFile && value) appendFileSync(opt.secretsFile, `${value}\n`, { mode: 0o600 });
}

// ---- The cookie jar: per host (as browsers: the port does not separate cookies), with Path,
// Secure, Max-Age/Expires and the __Host- prefix rules (RFC 6265bis), which a browser enforces.
const jar = new Map(); // `${host}|${name}` → { host, name, value, path, secure }

function parseSetCookie(line) {
  const parts = line.split(';').map((p) => p.trim());
  const eq = parts[0].indexOf('=');
  const c = { name: parts[0].slice(0, eq), value: parts[0].slice(eq + 1), attrs: {} };
  for (const p of parts.slice(1)) {
    const e = p.indexOf('=');
    const k = (e < 0 ? p : p.slice(0, e)).toLowerCase();
    c.attrs[k] = e < 0 ? true : p.slice(e + 1);
  }
  return c;
}

// What a Set-Cookie line may be printed as: its name, the value's length, its attributes.
function describeSetCookie(line) {
  const c = parseSetCookie(line);
  return { name: c.name, value_length: c.value.length, attributes: line.split(';').slice(1)
    .map((p) => p.trim()) };
}

function store(url, line) {
  const u = new URL(url);
  const c = parseSetCookie(line);
  const path = typeof c.attrs.path === 'string' ? c.attrs.path : '/';
  const secure = c.attrs.secure === true;
  if (secure && u.protocol !== 'https:') return 'rejected: Secure from http';
  if (c.name.startsWith('__Host-')
      && (!secure || path !== '/' || c.attrs.domain !== undefined || u.protocol !== 'https:')) {
    return 'rejected: __Host- rules';
  }
  const key = `${u.hostname}|${c.name}`;
  const maxAge = c.attrs['max-age'];
  const expires = c.attrs.expires ? Date.parse(c.attrs.expires) : NaN;
  if ((maxAge !== undefined && Number(maxAge) <= 0) || (!Number.isNaN(expires)
      && expires <= Date.now())) {
    jar.delete(key);
    return 'deleted';
  }
  jar.set(key, { host: u.hostname, name: c.name, value: c.value, path, secure });
  if (c.name.startsWith('__Host-')) remember(c.value);
  return 'stored';
}

function cookieHeader(url) {
  const u = new URL(url);
  const list = [];
  for (const c of jar.values()) {
    if (c.host !== u.hostname) continue;
    if (c.secure && u.protocol !== 'https:') continue;
    if (!(u.pathname === c.path || u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))) continue;
    list.push(`${c.name}=${c.value}`);
  }
  return list.join('; ');
}

function jarValue(host, name) {
  const c = jar.get(`${host}|${name}`);
  return c ? c.value : undefined;
}

// One request as the browser makes it; the redirects are the caller's.
async function request(method, url, { body, headers = {}, cookie } = {}) {
  const h = { 'user-agent': 'ordertrace-signin-test', ...headers };
  const ch = cookie !== undefined ? cookie : cookieHeader(url);
  if (ch) h.cookie = ch;
  if (body !== undefined) h['content-type'] = 'application/x-www-form-urlencoded';
  const res = await fetch(url, { method, headers: h, body, redirect: 'manual' });
  const setCookies = res.headers.getSetCookie();
  const stored = setCookies.map((line) => store(url, line));
  const text = await res.text();
  return { res, text, setCookies, stored, location: res.headers.get('location') };
}

// A URL safe to print: scheme, host, path and the names of its query parameters.
function redact(url) {
  if (!url) return url;
  try {
    const u = new URL(url, 'https://relative.invalid');
    const names = [...u.searchParams.keys()];
    const base = u.origin === 'https://relative.invalid' ? u.pathname : `${u.origin}${u.pathname}`;
    return names.length ? `${base}?${names.join('&')}` : base;
  } catch {
    return '(unparsable)';
  }
}

// A Location from the gateway: its own paths in full (the test compares them), anything else
// redacted (a gateway that sent the browser elsewhere must not make this script print a code).
function localOrRedacted(location) {
  if (!location) return location;
  return location.startsWith('/') && !location.startsWith('//') && !location.startsWith('/\\')
    ? location : redact(location);
}

// The first form of an HTML page: its action and its fields (hidden and others by name).
function parseForm(html) {
  const form = /<form[^>]*action="([^"]*)"[^>]*method="post"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return null;
  const fields = {};
  for (const m of form[2].matchAll(/<input([^>]*)>/gi)) {
    const name = /name="([^"]*)"/.exec(m[1]);
    const value = /value="([^"]*)"/.exec(m[1]);
    if (name) fields[name[1]] = value ? value[1] : '';
  }
  return { action: form[1].replace(/&amp;/g, '&'), fields };
}

// From the authorization request to the redirect back to `redirectUri`: the development login
// page (login = the user, any password), then the consent page.  Returns the callback URL.
async function throughIdp(authorizeUrl, redirectUri) {
  let url = authorizeUrl;
  let method = 'GET';
  let body;
  for (let hop = 0; hop < 20; ++hop) {
    const r = await request(method, url, { body });
    method = 'GET';
    body = undefined;
    if (r.res.status >= 300 && r.res.status < 400 && r.location) {
      const target = new URL(r.location, url).toString();
      if (target.startsWith(redirectUri)) return target;
      url = target;
      continue;
    }
    if (r.res.status !== 200) fail('idp', `HTTP ${r.res.status} at ${redact(url)}: ${r.text.slice(0, 300)}`);
    const abort = /<a href="([^"]*\/abort)"/.exec(r.text);
    if (opt.cancel && abort) {
      out({ step: 'idp_cancel', status: r.res.status, url: redact(url) });
      url = new URL(abort[1].replace(/&amp;/g, '&'), url).toString();
      continue;
    }
    const form = parseForm(r.text);
    if (!form) fail('idp', `no form at ${redact(url)}`);
    const fields = { ...form.fields };
    if (fields.prompt === 'login') {
      fields.login = opt.user;
      fields.password = 'any-password';
    }
    out({ step: `idp_${fields.prompt || 'form'}`, status: r.res.status, url: redact(url) });
    url = new URL(form.action, url).toString();
    method = 'POST';
    body = new URLSearchParams(fields).toString();
  }
  return fail('idp', 'too many redirects');
}

function b64url(buf) { return Buffer.from(buf).toString('base64url'); }
function claimsOf(jwt) { return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()); }

async function idpOnly() {
  const disc = await (await fetch(`${opt.issuer}/.well-known/openid-configuration`)).json();
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(16));
  const nonce = b64url(randomBytes(16));
  const q = new URLSearchParams({
    response_type: 'code', client_id: 'ordertrace-ui', redirect_uri: opt.redirectUri,
    scope: 'openid profile', state, nonce, resource: 'urn:ordertrace:api',
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
  });
  const callback = new URL(await throughIdp(`${disc.authorization_endpoint}?${q}`, opt.redirectUri));
  out({ step: 'callback_url', state_ok: callback.searchParams.get('state') === state,
    has_code: !!callback.searchParams.get('code'), iss: callback.searchParams.get('iss') });
  const basic = Buffer.from(`ordertrace-ui:${process.env.OIDC_UI_SECRET || 'ui-secret'}`).toString('base64');
  const token = async (form) => {
    const r = await fetch(disc.token_endpoint, {
      method: 'POST', body: new URLSearchParams(form).toString(),
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    });
    return { status: r.status, body: await r.json() };
  };
  const t = await token({ grant_type: 'authorization_code', code: callback.searchParams.get('code'),
    redirect_uri: opt.redirectUri, code_verifier: verifier });
  const describe = (b) => ({ keys: Object.keys(b), error: b.error,
    access: b.access_token ? claimsOf(b.access_token) : undefined,
    id: b.id_token ? claimsOf(b.id_token) : undefined });
  out({ step: 'token', status: t.status, ...describe(t.body) });
  if (t.body.refresh_token) {
    const r = await token({ grant_type: 'refresh_token', refresh_token: t.body.refresh_token });
    out({ step: 'refresh', status: r.status, ...describe(r.body) });
  }
  out({ step: 'end_session_endpoint', url: disc.end_session_endpoint });
}

async function signIn() {
  const gw = opt.gateway;
  const host = new URL(gw).hostname;
  const loginUrl = `${gw}/auth/login?return_to=${encodeURIComponent(opt.returnTo)}`;
  // 503 until the gateway has read the IdP's discovery document (its worker, after the start).
  let login = await request('GET', loginUrl);
  for (let i = 0; i < 100 && login.res.status === 503; ++i) {
    await new Promise((r) => { setTimeout(r, 100); });
    login = await request('GET', loginUrl);
  }
  const authorize = login.location ? new URL(login.location, gw) : null;
  const p = authorize ? authorize.searchParams : new URLSearchParams();
  out({ step: 'login', status: login.res.status, location: redact(login.location),
    set_cookie: login.setCookies.map(describeSetCookie), stored: login.stored,
    authorize: {
      response_type: p.get('response_type'), client_id: p.get('client_id'),
      redirect_uri: p.get('redirect_uri'), scope: p.get('scope'), resource: p.get('resource'),
      code_challenge_method: p.get('code_challenge_method'),
      code_challenge_length: (p.get('code_challenge') || '').length,
      state_length: (p.get('state') || '').length, nonce_length: (p.get('nonce') || '').length,
    } });
  if (!authorize) fail('login', `no redirect: ${login.text.slice(0, 300)}`);
  remember(p.get('state'));
  const callback = new URL(await throughIdp(authorize.toString(), `${gw}/auth/callback`));
  remember(callback.searchParams.get('code'));
  if (opt.tamperState) {
    callback.searchParams.set('state', b64url(randomBytes(32)));
  }
  const loginCookie = cookieHeader(callback.toString());
  const cb = await request('GET', callback.toString(), opt.noLoginCookie ? { cookie: '' } : {});
  out({ step: 'callback', status: cb.res.status, tampered: !!opt.tamperState,
    state_echoed: callback.searchParams.get('state') === p.get('state'),
    location: localOrRedacted(cb.location), set_cookie: cb.setCookies.map(describeSetCookie),
    stored: cb.stored,
    session: jarValue(host, '__Host-ordertrace_session') !== undefined,
    body: cb.location ? undefined : cb.text.slice(0, 300) });
  const session = jarValue(host, '__Host-ordertrace_session');
  return { callback: callback.toString(), loginCookie,
    sessionCookie: session === undefined ? undefined : `__Host-ordertrace_session=${session}` };
}

async function steps(flow) {
  const gw = opt.gateway;
  const host = new URL(gw).hostname;
  for (const s of opt.steps) {
    if (s.startsWith('get:')) {
      const path = s.slice(4);
      const r = await request('GET', `${gw}${path}`);
      let json;
      try { json = JSON.parse(r.text); } catch { json = undefined; }
      out({ step: 'get', path, status: r.res.status, json,
        hsts: r.res.headers.get('strict-transport-security') || undefined,
        www_authenticate: r.res.headers.get('www-authenticate') || undefined,
        body: json === undefined ? r.text.slice(0, 200) : undefined });
    } else if (s === 'logout' || s.startsWith('logout:')) {
      const origin = s.startsWith('logout:') ? s.slice(7) : undefined;
      const headers = origin ? { origin,
        'sec-fetch-site': origin === new URL(gw).origin ? 'same-origin' : 'cross-site' } : {};
      const r = await request('POST', `${gw}/auth/logout`, { body: '', headers });
      out({ step: 'logout', origin: origin || null, status: r.res.status,
        location: redact(r.location), set_cookie: r.setCookies.map(describeSetCookie),
        stored: r.stored, session: jarValue(host, '__Host-ordertrace_session') !== undefined });
    } else if (s === 'replay') {
      const r = await request('GET', flow.callback, { cookie: flow.loginCookie });
      out({ step: 'replay', status: r.res.status, location: localOrRedacted(r.location) || undefined,
        set_cookie: r.setCookies.map(describeSetCookie) });
    } else if (s.startsWith('sleep:')) {
      await new Promise((r) => { setTimeout(r, Number(s.slice(6))); });
    } else if (s.startsWith('get-old:')) {
      // The session cookie as it was right after the callback (a copy kept by an attacker, or a
      // browser that ignored the deletion).
      const path = s.slice(8);
      const r = await request('GET', `${gw}${path}`, { cookie: flow.sessionCookie || '' });
      out({ step: 'get_old', path, status: r.res.status,
        www_authenticate: r.res.headers.get('www-authenticate') || undefined });
    } else {
      fail('args', `unknown step ${s}`);
    }
  }
}

try {
  if (opt.idpOnly) {
    await idpOnly();
  } else {
    if (!opt.gateway || !opt.user) fail('args', 'need --gateway and --user');
    const flow = await signIn();
    await steps(flow);
  }
  out({ step: 'done' });
} catch (e) {
  fail('exception', String(e && e.cause ? `${e.message}: ${e.cause.message || e.cause}` : e));
}
