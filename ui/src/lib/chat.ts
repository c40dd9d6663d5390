// The one-line "copy for chat" texts: what an engineer pastes into the incident channel.

import type { OrderDetail } from './types';
import { formatDuration, secondsSince } from './format';
import { absoluteUrl, orderPath, safeHref } from './links';

/** `ORD-7 stuck after X for 47m 3s: <summary> — <absolute link> — Jaeger: <search link>`. */
export function orderChatLine(order: OrderDetail, now: number, origin?: string): string {
  const link = origin ? new URL(orderPath(order.order_id), origin).href : absoluteUrl(orderPath(order.order_id));
  const stage = order.stage ?? 'no milestone';
  const since = order.stage_since ?? order.first_seen;
  const dur = formatDuration(secondsSince(since, now));
  const summary = (order.diagnosis?.summary ?? order.summary ?? '').replace(/\s+/g, ' ').trim();
  let head: string;
  if (order.closed) head = `${order.order_id} closed (${stage})`;
  else if (order.stuck) head = `${order.order_id} stuck after ${stage} for ${dur}`;
  else head = `${order.order_id} in ${stage} for ${dur}`;
  const jaeger = safeHref(order.diagnosis?.jaeger_search_link ?? order.jaeger_search_link ?? null, origin);
  return `${head}: ${summary} — ${link}` + (jaeger ? ` — Jaeger: ${jaeger}` : '');
}

/** The board's line: how many are stuck (under these filters), the oldest, and the link. */
export function boardChatLine(
  total: number | null,
  shown: number,
  oldest: { order_id: string; stage: string | null; stuck_since: string | null } | null,
  filterText: string,
  link: string,
  now: number,
): string {
  const count = total ?? shown;
  const what = `${count} order${count === 1 ? '' : 's'} stuck${filterText ? ` (${filterText})` : ''}`;
  const old = oldest
    ? `; oldest ${oldest.order_id} in ${oldest.stage ?? 'no milestone'}, stuck for ${formatDuration(secondsSince(oldest.stuck_since, now))}`
    : '';
  return `${what}${old} — ${link}`;
}

/** Copies text; falls back to a hidden textarea where the Clipboard API is missing. */
export async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* fall through */
  }
  try {
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.className = 'offscreen';
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    return ok;
  } catch {
    return false;
  }
}
