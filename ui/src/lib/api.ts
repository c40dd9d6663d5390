// The gateway's JSON API from the browser: same origin, cookies sent, ETag revalidation.
// A 304 keeps the data the caller already has. 401 (the session expired mid-use) sends the page
// through sign-in and back; 403 becomes a sentence about the role; every other error keeps the
// API's own text ({"error": "..."}) to show as text.

export type FetchResult<T> =
  | { kind: 'ok'; data: T; etag: string | null }
  | { kind: 'not-modified' }
  | { kind: 'error'; status: number; message: string; forbidden: boolean; network: boolean };

/** What each route needs, for the 403 sentence. */
const ACTION_TEXT: [RegExp, string][] = [
  [/^\/api\/v1\/broker/, 'read the broker state (broker.read)'],
  [/^\/api\/v1\/orders\/[^/?]+/, 'read an order (orders.read)'],
  [/^\/api\/v1\//, 'list orders (orders.list)'],
];

export function forbiddenText(path: string, apiText?: string): string {
  const action = ACTION_TEXT.find(([re]) => re.test(path))?.[1] ?? 'do this';
  return `Your role may not ${action}.` + (apiText ? ` The gateway said: ${apiText}` : '');
}

/** The sign-in URL that brings the browser back to the current page. */
export function loginUrl(): string {
  return `/auth/login?return_to=${encodeURIComponent(location.pathname + location.search)}`;
}

type Listener = (ok: boolean, at: number) => void;
const listeners = new Set<Listener>();

/** Called after every request with whether the gateway answered; the frame's status line. */
export function onApiActivity(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function report(ok: boolean): void {
  const at = Date.now();
  for (const l of listeners) l(ok, at);
}

let redirecting = false;

export async function apiGet<T>(path: string, etag?: string | null, signal?: AbortSignal): Promise<FetchResult<T>> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (etag) headers['If-None-Match'] = etag;
  let response: Response;
  try {
    response = await fetch(path, { headers, credentials: 'same-origin', cache: 'no-cache', signal });
  } catch (e) {
    if (signal?.aborted) return { kind: 'error', status: 0, message: 'aborted', forbidden: false, network: false };
    report(false);
    return { kind: 'error', status: 0, message: 'gateway unreachable', forbidden: false, network: true };
  }
  if (response.status === 304) {
    report(true);
    return { kind: 'not-modified' };
  }
  if (response.status === 401) {
    report(true);
    if (!redirecting && typeof location !== 'undefined') {
      redirecting = true;
      location.assign(loginUrl());
    }
    return { kind: 'error', status: 401, message: 'signed out: going to sign-in', forbidden: false, network: false };
  }
  const text = await response.text().catch(() => '');
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    // 502/503/504 from a proxy in front are "unreachable" for the status line.
    report(response.status < 502);
    const apiText =
      body && typeof body === 'object' && typeof (body as { error?: unknown }).error === 'string'
        ? (body as { error: string }).error
        : `HTTP ${response.status}${text && text.length < 200 && !text.trimStart().startsWith('<') ? `: ${text}` : ''}`;
    if (response.status === 403) {
      return { kind: 'error', status: 403, message: forbiddenText(path, apiText), forbidden: true, network: false };
    }
    return { kind: 'error', status: response.status, message: apiText, forbidden: false, network: response.status >= 502 };
  }
  report(true);
  if (body === null) {
    return { kind: 'error', status: response.status, message: 'the gateway sent no JSON', forbidden: false, network: false };
  }
  return { kind: 'ok', data: body as T, etag: response.headers.get('ETag') };
}
