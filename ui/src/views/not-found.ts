// The search box used on the 404 page and the search results page.

import { html } from 'lit';
import { navigate } from '../lib/router';
import { searchTarget } from '../lib/url-state';

function submit(e: Event): void {
  e.preventDefault();
  const input = (e.target as HTMLFormElement).querySelector('input');
  const target = searchTarget(input?.value ?? '');
  if (target) navigate(target);
}

export function searchBox(value = '') {
  return html`<form class="search-inline" role="search" @submit=${submit}>
    <label for="ot-search-inline">Order id, <code>partner:</code>, <code>trace:</code> or <code>msg:</code></label>
    <input id="ot-search-inline" type="search" .value=${value} autocomplete="off" spellcheck="false" />
    <button type="submit">Search</button>
  </form>`;
}
