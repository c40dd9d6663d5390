// The frame around every view: nav, search box (`/` focuses it), broker pill, the "updated N s
// ago" / "gateway unreachable, retrying" status, the signed-in user and logout. It owns the
// broker poll (the pill, the board's queues panel and the broker page share one answer) and
// picks the view from the URL.

import { html, nothing } from 'lit';
import { isTypingTarget, LightElement, onTick } from '../lib/base';
import { apiGet, onApiActivity } from '../lib/api';
import { Poller, type PollState } from '../lib/poller';
import { currentRoute, navigate, ROUTE_EVENT, startRouter, type Route } from '../lib/router';
import { searchTarget } from '../lib/url-state';
import { formatClock } from '../lib/format';
import type { Broker, Me } from '../lib/types';
import { iconDown, iconOk, iconSearch } from './icons';
import '../views/stuck-view';
import '../views/order-view';
import '../views/flow-view';
import '../views/broker-view';
import '../views/kpi-view';
import '../views/search-view';
import { searchBox } from '../views/not-found';

const NAV: { name: Route['name']; path: string; label: string }[] = [
  { name: 'stuck', path: '/ui/stuck', label: 'Stuck' },
  { name: 'flow', path: '/ui/flow', label: 'Flow' },
  { name: 'broker', path: '/ui/broker', label: 'Broker' },
  { name: 'kpi', path: '/ui/kpi', label: 'KPIs' },
];

function routeKey(r: Route): string {
  return r.name === 'order' ? `order:${r.id}` : r.name;
}

export class OtApp extends LightElement {
  static override properties = {
    route: { state: true },
    me: { state: true },
    meError: { state: true },
    broker: { state: true },
    lastOk: { state: true },
    failing: { state: true },
  };

  route: Route = { name: 'stuck' };
  me: Me | null = null;
  meError: string | null = null;
  broker: PollState<Broker> = { data: null, error: null, loading: true, updatedAt: null };
  lastOk: number | null = null;
  failing = false;
  private brokerPoller: Poller<Broker> | null = null;
  private routeKey: string | null = null;
  private cleanups: (() => void)[] = [];
  private readonly onRoute = () => this.applyRoute();
  private readonly onKey = (e: KeyboardEvent) => {
    if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
    if (isTypingTarget(e.target)) return;
    const input = this.querySelector<HTMLInputElement>('input[data-testid="search"]');
    if (input) {
      e.preventDefault();
      input.focus();
      input.select();
    }
  };

  override connectedCallback(): void {
    super.connectedCallback();
    startRouter();
    window.addEventListener(ROUTE_EVENT, this.onRoute);
    document.addEventListener('keydown', this.onKey);
    this.cleanups.push(
      onApiActivity((ok, at) => {
        if (ok) this.lastOk = at;
        this.failing = !ok;
      }),
      onTick(() => this.requestUpdate()),
    );
    this.applyRoute();
    this.loadMe();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener(ROUTE_EVENT, this.onRoute);
    document.removeEventListener('keydown', this.onKey);
    this.brokerPoller?.stop();
    for (const c of this.cleanups) c();
    this.cleanups = [];
  }

  private applyRoute(): void {
    const route = currentRoute();
    if (route.name === 'root') {
      navigate('/ui/stuck' + location.search, { replace: true });
      return;
    }
    const moved = this.routeKey !== null && this.routeKey !== routeKey(route);
    this.routeKey = routeKey(route);
    this.route = route;
    if (moved) {
      // A new page (not a filter change): start at its top and put focus there, as a page load would.
      this.updateComplete.then(() => {
        window.scrollTo?.(0, 0);
        this.querySelector<HTMLElement>('main')?.focus({ preventScroll: true });
      });
    }
    const label = NAV.find((n) => n.name === route.name)?.label;
    document.title =
      route.name === 'order' ? `${route.id} · ordertrace` : route.name === 'not-found' ? 'Not found · ordertrace' : `${label ?? 'Search'} · ordertrace`;
  }

  private async loadMe(): Promise<void> {
    const result = await apiGet<Me>('/api/v1/me');
    if (result.kind === 'ok') {
      this.me = result.data;
      if (this.may('broker.read')) this.startBroker();
      else this.broker = { data: null, error: { status: 403, message: 'Your role may not read the broker state (broker.read).', forbidden: true }, loading: false, updatedAt: null };
    } else if (result.kind === 'error') {
      this.meError = result.message;
      // Without /me (an older gateway) still try the broker: its own answer says what is allowed.
      this.startBroker();
    }
  }

  private startBroker(): void {
    if (this.brokerPoller) return;
    this.brokerPoller = new Poller<Broker>('/api/v1/broker', { intervalMs: 2000, errorIntervalMs: 10_000 }, (s) => (this.broker = s));
    this.brokerPoller.start();
  }

  /** Whether /api/v1/me lists the action (unknown = allowed; the server enforces anyway). */
  may(action: string): boolean {
    return this.me ? this.me.actions.includes(action) : true;
  }

  private onSearch(e: Event): void {
    e.preventDefault();
    const input = (e.target as HTMLFormElement).querySelector('input');
    const target = searchTarget(input?.value ?? '');
    if (target) navigate(target);
  }

  private renderPill() {
    const b = this.broker;
    if (b.data === null) {
      if (b.error?.status === 404) return html`<span class="pill muted" data-testid="broker-pill">no broker configured</span>`;
      if (b.error?.forbidden) return nothing;
      if (b.error) return html`<span class="pill muted" data-testid="broker-pill">RabbitMQ state unknown</span>`;
      return html`<span class="pill muted" data-testid="broker-pill">RabbitMQ …</span>`;
    }
    if (b.data.up) return html`<span class="pill ok" data-testid="broker-pill">${iconOk()} RabbitMQ up</span>`;
    return html`<span class="pill bad" data-testid="broker-pill" title=${b.data.error ?? ''}
      >${iconDown()} RabbitMQ UNREACHABLE since ${formatClock(b.data.since)}</span
    >`;
  }

  private renderStatus() {
    if (this.failing) return html`<span class="status bad" data-testid="status" role="status">gateway unreachable, retrying</span>`;
    if (this.lastOk === null) return html`<span class="status muted" data-testid="status" role="status">connecting…</span>`;
    const ago = Math.max(0, Math.round((Date.now() - this.lastOk) / 1000));
    return html`<span class="status muted" data-testid="status">updated ${ago} s ago</span>`;
  }

  private renderUser() {
    const me = this.me;
    if (!me) return this.meError ? html`<span class="user muted" data-testid="user">user unknown</span>` : nothing;
    const name = me.name || me.sub || (me.auth === 'anonymous' ? 'anonymous' : 'signed in');
    const roles = me.roles.length ? me.roles.join(', ') : 'no role';
    return html`<span class="user" data-testid="user">${name} · ${roles}</span>
      ${me.auth === 'session'
        ? html`<form method="post" action="/auth/logout" class="logout"><button type="submit" data-testid="logout">Log out</button></form>`
        : nothing}`;
  }

  private renderView() {
    const r = this.route;
    const broker = this.broker;
    switch (r.name) {
      case 'stuck':
        return html`<ot-stuck-view .broker=${broker}></ot-stuck-view>`;
      case 'order':
        return html`<ot-order-view .orderId=${r.id} .broker=${broker}></ot-order-view>`;
      case 'flow':
        return html`<ot-flow-view></ot-flow-view>`;
      case 'broker':
        return html`<ot-broker-view .broker=${broker}></ot-broker-view>`;
      case 'kpi':
        return html`<ot-kpi-view></ot-kpi-view>`;
      case 'search':
        return html`<ot-search-view></ot-search-view>`;
      default:
        return html`<section class="view" data-testid="not-found">
          <h1>Page not found</h1>
          <p>Nothing lives at <code>${location.pathname}</code>. Look an order up instead:</p>
          ${searchBox()}
        </section>`;
    }
  }

  override render() {
    const active = this.route.name === 'order' || this.route.name === 'search' ? null : this.route.name;
    return html`<a class="skip" href="#main">Skip to content</a>
      <header class="frame">
        <a class="brand" href="/ui/stuck">ordertrace</a>
        <nav aria-label="Views">
          <ul>
            ${NAV.map(
              (n) =>
                html`<li>
                  <a href=${n.path} data-testid="nav-${n.name}" aria-current=${active === n.name ? 'page' : nothing}>${n.label}</a>
                </li>`,
            )}
          </ul>
        </nav>
        <form class="search" role="search" @submit=${this.onSearch}>
          <label class="offscreen" for="ot-search">Search orders</label>
          ${iconSearch()}
          <input
            id="ot-search"
            type="search"
            data-testid="search"
            placeholder="ORD-7, partner:…, trace:…, msg:…  ( / )"
            autocomplete="off"
            spellcheck="false"
          />
        </form>
        <div class="frame-status">${this.renderPill()} ${this.renderStatus()} ${this.renderUser()}</div>
      </header>
      <main id="main" tabindex="-1">${this.renderView()}</main>`;
  }
}

customElements.define('ot-app', OtApp);
