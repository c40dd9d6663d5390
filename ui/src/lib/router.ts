// A History-API router over /ui/...: paths, not fragments, so a deep link survives the sign-in
// round trip (the gateway keeps path and query in return_to). Every view state lives in the
// query string; Back/Forward replay it. Views read `currentRoute()` and re-render on the
// `ot-route` event the router fires on window.

import { decodeId } from './links';

export type Route =
  | { name: 'stuck' }
  | { name: 'order'; id: string }
  | { name: 'search' }
  | { name: 'flow' }
  | { name: 'broker' }
  | { name: 'kpi' }
  | { name: 'root' }
  | { name: 'not-found' };

export const ROUTE_EVENT = 'ot-route';

/** The route of a path as the browser keeps it (still percent-encoded). */
export function matchRoute(pathname: string): Route {
  if (pathname === '/ui' || pathname === '/ui/') return { name: 'root' };
  const simple: Record<string, Route['name']> = {
    '/ui/stuck': 'stuck',
    '/ui/flow': 'flow',
    '/ui/broker': 'broker',
    '/ui/kpi': 'kpi',
    '/ui/orders': 'search',
  };
  const trimmed = pathname.length > 4 && pathname.endsWith('/') ? pathname.slice(0, -1) : pathname;
  const name = simple[trimmed];
  if (name) return { name } as Route;
  const prefix = '/ui/orders/';
  if (pathname.startsWith(prefix)) {
    const segment = pathname.slice(prefix.length);
    // One segment only: an id's own '/' travels as %2F.
    if (segment.length > 0 && !segment.includes('/')) {
      const id = decodeId(segment);
      if (id !== null && id.length > 0) return { name: 'order', id };
    }
  }
  return { name: 'not-found' };
}

export function currentRoute(): Route {
  return matchRoute(location.pathname);
}

export function currentParams(): URLSearchParams {
  return new URLSearchParams(location.search);
}

/** Goes to a /ui/ path (with query); `replace` rewrites the current history entry instead. */
export function navigate(url: string, options: { replace?: boolean } = {}): void {
  const target = new URL(url, location.origin);
  if (target.origin !== location.origin) {
    location.assign(target.href);
    return;
  }
  const next = target.pathname + target.search + target.hash;
  const now = location.pathname + location.search + location.hash;
  if (next !== now) {
    if (options.replace) history.replaceState(null, '', next);
    else history.pushState(null, '', next);
  }
  window.dispatchEvent(new Event(ROUTE_EVENT));
}

/** Same-origin /ui/ links clicked without modifiers are routed in place; others load normally. */
function onClick(event: MouseEvent): void {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const anchor = event
    .composedPath()
    .find((n): n is HTMLAnchorElement | SVGAElement => n instanceof HTMLAnchorElement || (typeof SVGAElement !== 'undefined' && n instanceof SVGAElement));
  if (!anchor) return;
  const href = anchor instanceof HTMLAnchorElement ? anchor.href : anchor.href.baseVal;
  const target = anchor instanceof HTMLAnchorElement ? anchor.target : anchor.target.baseVal;
  if (!href || target || anchor.hasAttribute('download')) return;
  const url = new URL(href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/ui/')) return;
  if (url.pathname.startsWith('/ui/assets/')) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
}

let started = false;

/** Installs the click and popstate handlers once. */
export function startRouter(): void {
  if (started) return;
  started = true;
  document.addEventListener('click', onClick);
  window.addEventListener('popstate', () => window.dispatchEvent(new Event(ROUTE_EVENT)));
}
