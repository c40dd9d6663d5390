// Links and ids. Telemetry decides link targets (the API's jaeger_link is built from config, but
// everything reaching the browser is treated as untrusted): only http(s) URLs become hrefs.

/** The URL when it is an absolute http: or https: URL (or a same-origin path), else null. */
export function safeHref(url: string | null | undefined, base?: string): string | null {
  if (typeof url !== 'string' || url.length === 0 || url.length > 8192) return null;
  // Control characters and whitespace never appear in a sound link.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f]/.test(url)) return null;
  let parsed: URL;
  try {
    parsed = new URL(url, base ?? (typeof location !== 'undefined' ? location.origin : 'http://localhost'));
  } catch {
    return null;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
  return parsed.href;
}

/** Percent-encodes an order id for one path segment, exactly as the API expects (`/` → %2F). */
export function encodeId(id: string): string {
  return encodeURIComponent(id);
}

/** The id in a path segment, or null when the segment is not valid percent-encoding. */
export function decodeId(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

export function orderPath(id: string): string {
  return `/ui/orders/${encodeId(id)}`;
}

export function orderApiPath(id: string): string {
  return `/api/v1/orders/${encodeId(id)}`;
}

/** The absolute URL of a UI path on this origin (what a chat message needs). */
export function absoluteUrl(path: string): string {
  return new URL(path, location.origin).href;
}
