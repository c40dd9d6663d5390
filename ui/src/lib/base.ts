// Base of every view: Lit element rendering into light DOM, so one linked stylesheet (allowed by
// `style-src 'self'`) styles everything and no style element or inline style is ever needed.

import { LitElement } from 'lit';

export class LightElement extends LitElement {
  protected override createRenderRoot(): HTMLElement {
    return this;
  }
}

/** A 1 s clock for live text ("stuck for", "updated N s ago"); one interval for the page. */
const tickers = new Set<() => void>();
let tickTimer: ReturnType<typeof setInterval> | null = null;

export function onTick(fn: () => void): () => void {
  tickers.add(fn);
  if (tickTimer === null) {
    tickTimer = setInterval(() => {
      if (typeof document !== 'undefined' && document.visibilityState === 'hidden') return;
      for (const t of tickers) t();
    }, 1000);
  }
  return () => {
    tickers.delete(fn);
    if (tickers.size === 0 && tickTimer !== null) {
      clearInterval(tickTimer);
      tickTimer = null;
    }
  };
}

/** Whether a key event comes from a place where keys type text (shortcuts stay out of it). */
export function isTypingTarget(target: EventTarget | null): boolean {
  const t = target as HTMLElement | null;
  return !!t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
}
