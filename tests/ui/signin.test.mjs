// Browser sign-in through the gateway (its OIDC session, src/auth/browser_signin.h) with a real
// OpenID provider (tests/oidc/provider.mjs and its development login and consent pages): a deep
// link while signed out goes through the IdP and lands back on it; the Sales user is refused;
// logout ends the session.  Needs OT_SIGNIN_GATEWAY (http://localhost:PORT: browsers keep the
// Secure session cookie on plain http only for localhost) and OT_IDP (the issuer).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { SIGNIN_GATEWAY, launch, instrumentedPage, assertClean, sendSpans, stageSpan, tid, hex } from './lib.mjs';

const IDP = process.env.OT_IDP || '';
const skip = !SIGNIN_GATEWAY || !IDP ? 'OT_SIGNIN_GATEWAY and OT_IDP are not set (the harness sets them)' : false;

// Every browser started here, closed at the end even when a test failed (an open browser keeps
// node's test process alive).
const contexts = [];
after(async () => {
  await Promise.all(contexts.map((c) => c.close().catch(() => {})));
});

// A fresh browser profile (no cookies) with an instrumented page that may visit the IdP.
async function freshPage() {
  const context = await launch();
  contexts.push(context);
  const page = await instrumentedPage(context, { origin: SIGNIN_GATEWAY, allowed: [IDP] });
  return { context, page };
}

// On the IdP: its login page (any password), then its consent page, until it sends the
// browser back to the gateway.
async function signInAtIdp(page, user) {
  await page.waitForURL((u) => u.origin === new URL(IDP).origin, { timeout: 15_000 });
  for (let i = 0; i < 5 && new URL(page.url()).origin === new URL(IDP).origin; ++i) {
    const login = page.locator('input[name="login"]');
    if (await login.count()) {
      await login.fill(user);
      await page.locator('input[name="password"]').fill('any-password');
    }
    await Promise.all([
      page.waitForNavigation({ timeout: 15_000 }),
      page.locator('button[type="submit"]').first().click(),
    ]);
  }
  assert.equal(new URL(page.url()).origin, new URL(SIGNIN_GATEWAY).origin, 'back on the gateway');
}

test('a deep link while signed out goes through the IdP and lands back on it; logout ends it',
  { skip }, async () => {
    const id = `UI-SIGNIN-${hex(3)}`;
    if (process.env.OT_SIGNIN_OTLP) {
      process.env.OT_OTLP_HTTP = process.env.OT_SIGNIN_OTLP;
      await sendSpans([stageSpan(id, 'SUBMITTED', { service: 'partner' })]).catch(() => {});
    }
    const { context, page } = await freshPage();
    // The API without a session: 401 JSON, never a redirect.
    const anon = await page.request.get(`${SIGNIN_GATEWAY}/api/v1/me`, { maxRedirects: 0 });
    assert.equal(anon.status(), 401);
    assert.match(anon.headers()['content-type'] || '', /json/);

    const deep = `/ui/orders/${encodeURIComponent(id)}?tab=spans`;
    await page.goto(SIGNIN_GATEWAY + deep);
    await signInAtIdp(page, 'alice');
    await page.waitForURL((u) => u.pathname + u.search === deep);
    await tid(page, 'order-id').waitFor({ timeout: 15_000 }).catch(() => {});
    await page.locator('[data-testid="order-id"], [data-testid="not-found"], [data-testid="error"]')
      .first().waitFor();
    assert.match(await tid(page, 'user').innerText(), /Alice|alice/);
    assert.match(await tid(page, 'user').innerText(), /Developer/);
    const me = await page.request.get(`${SIGNIN_GATEWAY}/api/v1/me`);
    assert.equal(me.status(), 200);
    assert.deepEqual((await me.json()).roles, ['Developer']);
    await assertClean(assert, page, 'signed in');

    // Logout: a POST with the gateway's Origin (the UI's form or fetch), then on to the IdP's
    // end-session page; the session is gone.
    await tid(page, 'logout').click();
    let after;
    for (let i = 0; i < 50; ++i) {
      after = await page.request.get(`${SIGNIN_GATEWAY}/api/v1/me`, { maxRedirects: 0 });
      if (after.status() === 401) break;
      await page.waitForTimeout(200);
    }
    assert.equal(after.status(), 401, 'the session ended');
    // A view now goes through sign-in again.
    // (the IdP may still have its own session and send the browser straight back: what counts is
    // that the gateway asked for a new sign-in).
    const navigations = [];
    page.on('request', (r) => { if (r.isNavigationRequest()) navigations.push(new URL(r.url()).pathname); });
    await page.goto(`${SIGNIN_GATEWAY}/ui/stuck`);
    await page.waitForLoadState('networkidle');
    assert.ok(navigations.includes('/auth/login'), `a new sign-in: ${navigations.join(' → ')}`);
    await context.close();
  });

test('the Sales user is refused', { skip }, async () => {
  const { context, page } = await freshPage();
  await page.goto(`${SIGNIN_GATEWAY}/ui/stuck`);
  await signInAtIdp(page, 'sam');
  assert.match(await page.locator('body').innerText(), /none of the roles/);
  const me = await page.request.get(`${SIGNIN_GATEWAY}/api/v1/me`, { maxRedirects: 0 });
  assert.equal(me.status(), 401, 'no session for sam');
  await context.close();
});
