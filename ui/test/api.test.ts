import { afterEach, describe, expect, it, vi } from 'vitest';
import { apiGet, forbiddenText, loginUrl } from '../src/lib/api';
import { Poller } from '../src/lib/poller';

afterEach(() => vi.unstubAllGlobals());

describe('api', () => {
  it('revalidates with If-None-Match and keeps the data on 304', async () => {
    const seen: (string | undefined)[] = [];
    let calls = 0;
    vi.stubGlobal('fetch', async (_: string, init: RequestInit) => {
      seen.push((init.headers as Record<string, string>)['If-None-Match']);
      calls++;
      return calls === 1
        ? new Response('{"a":1}', { status: 200, headers: { ETag: '"7"' } })
        : new Response(null, { status: 304 });
    });
    const states: unknown[] = [];
    const p = new Poller<{ a: number }>('/api/v1/summary', { intervalMs: 20 }, (s) => states.push(s.data));
    p.start();
    await new Promise((r) => setTimeout(r, 80));
    p.stop();
    expect(seen[0]).toBeUndefined();
    expect(seen[1]).toBe('"7"');
    expect(states.every((d) => d === null || (d as { a: number }).a === 1)).toBe(true);
    expect(p.state.data).toEqual({ a: 1 });
  });

  it('backs off after an error and keeps the last data', async () => {
    let calls = 0;
    vi.stubGlobal('fetch', async () => {
      calls++;
      if (calls === 1) return new Response('{"a":1}', { status: 200 });
      throw new TypeError('network down');
    });
    const p = new Poller<{ a: number }>('/x', { intervalMs: 10, errorIntervalMs: 200 }, () => {});
    p.start();
    await new Promise((r) => setTimeout(r, 100));
    p.stop();
    expect(calls).toBe(2);
    expect(p.state.data).toEqual({ a: 1 });
    expect(p.state.error?.message).toBe('gateway unreachable');
  });

  it('keeps the API error text and words 403 by role', async () => {
    vi.stubGlobal('fetch', async (path: string) =>
      path.includes('broker')
        ? new Response('{"error":"role DevOps needed","status":403}', { status: 403 })
        : new Response('{"error":"limit: expected 1..1000, got \'0\'","status":400}', { status: 400 }),
    );
    const e = await apiGet('/api/v1/orders?limit=0');
    expect(e).toMatchObject({ kind: 'error', status: 400, message: "limit: expected 1..1000, got '0'" });
    const f = await apiGet('/api/v1/broker');
    expect(f).toMatchObject({ kind: 'error', status: 403, forbidden: true });
    expect((f as { message: string }).message).toBe('Your role may not read the broker state (broker.read). The gateway said: role DevOps needed');
    expect(forbiddenText('/api/v1/orders/X')).toBe('Your role may not read an order (orders.read).');
  });

  it('sends a signed-out page to sign-in and back', () => {
    history.replaceState(null, '', '/ui/orders/ORD%2F42?tab=spans');
    expect(loginUrl()).toBe('/auth/login?return_to=%2Fui%2Forders%2FORD%252F42%3Ftab%3Dspans');
  });
});
