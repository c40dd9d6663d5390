// Base of the views that show one API resource over a time window (`window=` in the URL):
// the flow map and the KPIs. It polls `${api}?window=W` while connected and draws the selector.

import { html, nothing } from 'lit';
import { LightElement } from './base';
import { Poller, type PollState } from './poller';
import { currentParams, navigate, ROUTE_EVENT } from './router';
import { formatClock } from './format';

export abstract class WindowView<T extends { as_of: string }> extends LightElement {
  static override properties = { data: { state: true } };
  data: PollState<T> = { data: null, error: null, loading: true, updatedAt: null };
  protected window: string;
  private readonly poller: Poller<T>;
  private readonly onRoute = () => this.readUrl();

  constructor(
    private readonly page: string, // '/ui/flow'
    private readonly api: string, // '/api/v1/flow'
    private readonly defaultWindow: string,
    private readonly choices: string[],
  ) {
    super();
    this.window = defaultWindow;
    this.poller = new Poller<T>(`${api}?window=${defaultWindow}`, { intervalMs: 10_000 }, (s) => (this.data = s));
  }

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener(ROUTE_EVENT, this.onRoute);
    this.readUrl();
    this.poller.start();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener(ROUTE_EVENT, this.onRoute);
    this.poller.stop();
  }

  private readUrl(): void {
    if (location.pathname !== this.page) return;
    const w = currentParams().get('window');
    // The API checks the range (400 with its reason otherwise); this only keeps the shape sane.
    this.window = w && /^\d{1,4}[smhd]$/.test(w) ? w : this.defaultWindow;
    this.poller.setPath(`${this.api}?window=${encodeURIComponent(this.window)}`);
    this.requestUpdate();
  }

  /** The view's heading row: title, window selector, "as of". */
  protected renderHead(title: string, testid?: string) {
    return html`<div class="view-head">
      <h1>${title}</h1>
      <label
        >Window
        <select data-testid=${testid ?? nothing} @change=${(e: Event) => navigate(`${this.page}?window=${(e.target as HTMLSelectElement).value}`)}>
          ${[...new Set([...this.choices, this.window])].map((w) => html`<option value=${w} ?selected=${w === this.window}>${w}</option>`)}
        </select>
      </label>
      ${this.data.data ? html`<span class="muted">as of ${formatClock(this.data.data.as_of)}</span>` : nothing}
    </div>`;
  }
}
