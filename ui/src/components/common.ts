// Small shared templates: loading / empty / error states, external links, copy buttons.

import { html, nothing, type TemplateResult } from 'lit';
import { safeHref } from '../lib/links';
import { iconExternal } from './icons';
import type { PollState } from '../lib/poller';

export function loadingState(what: string): TemplateResult {
  return html`<p class="state loading" role="status">Loading ${what}…</p>`;
}

export function emptyState(text: string): TemplateResult {
  return html`<p class="state empty">${text}</p>`;
}

/** The API's error text, as text. */
export function errorState(message: string, forbidden = false): TemplateResult {
  return html`<p class="state error ${forbidden ? 'forbidden' : ''}" role="alert" data-testid="error">${message}</p>`;
}

/** Loading / error / empty handling around a poller's data. */
export function pollStates<T>(
  state: PollState<T>,
  what: string,
  isEmpty: (d: T) => boolean,
  emptyText: string,
  body: (d: T) => TemplateResult | typeof nothing,
): TemplateResult | typeof nothing {
  if (state.data === null) {
    if (state.error) return errorState(state.error.message, state.error.forbidden);
    return loadingState(what);
  }
  return html`${state.error ? errorState(state.error.message, state.error.forbidden) : nothing}
  ${isEmpty(state.data) ? emptyState(emptyText) : body(state.data)}`;
}

/** An external link (Jaeger): only http(s) hrefs; anything else renders as plain text. */
export function externalLink(url: string | null | undefined, text: string, testid?: string, label?: string) {
  const href = safeHref(url ?? null);
  if (!href) return html`<span class="muted">${text}</span>`;
  return html`<a
    class="external"
    href=${href}
    target="_blank"
    rel="noopener noreferrer"
    data-testid=${testid ?? nothing}
    aria-label=${label ?? nothing}
    >${text} ${iconExternal()}</a
  >`;
}
