// Inline SVG icons (no icon font, no third-party asset). Decorative: aria-hidden, the text beside
// each says the same thing, so colour and shape are never the only signal.

import { svg, html } from 'lit';

const wrap = (body: ReturnType<typeof svg>) =>
  html`<svg class="icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false">${body}</svg>`;

export const iconWarn = () =>
  wrap(svg`<path d="M8 1.5 15 14H1z" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linejoin="round"/><path d="M8 6v4M8 11.5v1.2" stroke="currentColor" stroke-width="1.6"/>`);
export const iconOk = () =>
  wrap(svg`<circle cx="8" cy="8" r="6.5" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="m5 8.2 2 2 4-4.4" fill="none" stroke="currentColor" stroke-width="1.6"/>`);
export const iconDown = () =>
  wrap(svg`<circle cx="8" cy="8" r="6.5" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="m5.5 5.5 5 5m0-5-5 5" stroke="currentColor" stroke-width="1.6"/>`);
export const iconExternal = () =>
  wrap(svg`<path d="M9 2h5v5M14 2 7.5 8.5M12 9.5V14H2V4h4.5" fill="none" stroke="currentColor" stroke-width="1.5"/>`);
export const iconCopy = () =>
  wrap(svg`<rect x="5" y="5" width="9" height="9" rx="1.5" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="M11 3.5V2H2v9h1.5" fill="none" stroke="currentColor" stroke-width="1.5"/>`);
export const iconSearch = () =>
  wrap(svg`<circle cx="7" cy="7" r="4.5" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="m10.5 10.5 4 4" stroke="currentColor" stroke-width="1.6"/>`);
export const iconClock = () =>
  wrap(svg`<circle cx="8" cy="8" r="6.5" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="M8 4.5V8l2.5 1.5" fill="none" stroke="currentColor" stroke-width="1.5"/>`);
