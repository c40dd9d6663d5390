// Polls one API resource while the tab is visible: If-None-Match with the last ETag, so an
// unchanged resource costs a 304 and no re-render. Backs off to `errorIntervalMs` while the
// gateway fails and returns to `intervalMs` on the next answer. Hidden tabs do not poll; showing
// the tab again fetches at once.

import { apiGet, type FetchResult } from './api';

export interface PollState<T> {
  data: T | null;
  error: { status: number; message: string; forbidden: boolean } | null;
  loading: boolean;
  updatedAt: number | null;
}

export interface PollerOptions {
  intervalMs: number; // 0: fetch once, do not poll
  errorIntervalMs?: number;
}

export class Poller<T> {
  state: PollState<T> = { data: null, error: null, loading: true, updatedAt: null };
  private etag: string | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private controller: AbortController | null = null;
  private running = false;
  private inFlight = false;
  private readonly onVisibility = () => {
    if (!this.running) return;
    if (document.visibilityState === 'visible') this.refresh();
    else this.clearTimer();
  };

  constructor(
    private path: string,
    private readonly options: PollerOptions,
    private readonly onChange: (state: PollState<T>) => void,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    document.addEventListener('visibilitychange', this.onVisibility);
    this.refresh();
  }

  stop(): void {
    this.running = false;
    this.clearTimer();
    this.controller?.abort();
    this.controller = null;
    this.inFlight = false;
    document.removeEventListener('visibilitychange', this.onVisibility);
  }

  /** Points the poller at a new query: drops the ETag and data, fetches now. */
  setPath(path: string, keepData = false): void {
    if (path === this.path) return;
    this.path = path;
    this.etag = null;
    this.controller?.abort();
    this.inFlight = false;
    this.state = { data: keepData ? this.state.data : null, error: null, loading: true, updatedAt: this.state.updatedAt };
    this.onChange(this.state);
    if (this.running) this.refresh();
  }

  /** Changes the poll interval; 0 stops polling after the current answer (a closed order). */
  setIntervalMs(ms: number): void {
    if (ms === this.options.intervalMs) return;
    this.options.intervalMs = ms;
    if (ms <= 0) this.clearTimer();
    else if (this.running && !this.inFlight && this.timer === null) this.schedule(ms);
  }

  /** Fetches now (unless a fetch is under way) and schedules the next one. */
  refresh(): void {
    if (!this.running || this.inFlight) return;
    this.clearTimer();
    this.inFlight = true;
    this.controller = new AbortController();
    const path = this.path;
    apiGet<T>(path, this.etag, this.controller.signal).then((result) => {
      if (path !== this.path || !this.running) return;
      this.inFlight = false;
      this.apply(result);
      this.schedule(result.kind === 'error' ? this.options.errorIntervalMs ?? 10_000 : this.options.intervalMs);
    });
  }

  private apply(result: FetchResult<T>): void {
    if (result.kind === 'not-modified') {
      this.state = { ...this.state, loading: false, error: null, updatedAt: Date.now() };
      this.onChange(this.state);
      return;
    }
    if (result.kind === 'ok') {
      this.etag = result.etag;
      this.state = { data: result.data, error: null, loading: false, updatedAt: Date.now() };
    } else {
      if (result.message === 'aborted') return;
      // Keep the last data on screen beside the error: a blip must not blank the board.
      this.state = {
        data: this.state.data,
        error: { status: result.status, message: result.message, forbidden: result.forbidden },
        loading: false,
        updatedAt: this.state.updatedAt,
      };
    }
    this.onChange(this.state);
  }

  private schedule(ms: number): void {
    this.clearTimer();
    if (!this.running || ms <= 0) return;
    if (typeof document !== 'undefined' && document.visibilityState === 'hidden') return;
    this.timer = setTimeout(() => this.refresh(), ms);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
