import { describe, expect, it } from 'vitest';
import { safeHref } from '../src/lib/links';
import { orderChatLine, boardChatLine } from '../src/lib/chat';
import type { OrderDetail } from '../src/lib/types';
import notProcessed from './fixtures/order-not-processed.json';
import closed from './fixtures/order-closed.json';

describe('safeHref', () => {
  it('keeps http(s) links, as the API builds Jaeger links', () => {
    const s = notProcessed.spans[0].jaeger_link!;
    expect(safeHref(s)).toBe(s);
    expect(safeHref('https://jaeger.example/trace/abc?uiFind=1')).toBe('https://jaeger.example/trace/abc?uiFind=1');
    expect(safeHref('/jaeger/search?traceID=a', 'http://gw:8080')).toBe('http://gw:8080/jaeger/search?traceID=a');
  });
  it('refuses every other scheme and malformed input', () => {
    for (const bad of [
      'javascript:alert(1)',
      'JAVASCRIPT:alert(1)',
      ' javascript:alert(1)',
      'java\nscript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'vbscript:x',
      'file:///etc/passwd',
      'ftp://x/y',
      'http://exa mple.com/',
      '',
      null,
      undefined,
    ]) {
      expect(safeHref(bad as string | null)).toBeNull();
    }
  });
});

describe('copy for chat', () => {
  const now = Date.parse(notProcessed.diagnosis.stage_since!) + (47 * 60 + 3) * 1000;
  it('is one line: id, stage, duration, summary, absolute link, Jaeger search link', () => {
    const line = orderChatLine(notProcessed as unknown as OrderDetail, now, 'https://gw.example');
    const id = notProcessed.order_id;
    expect(line).toBe(
      `${id} stuck after ${notProcessed.stage} for 47m 3s: ${notProcessed.diagnosis.summary} — https://gw.example/ui/orders/${encodeURIComponent(id)} — Jaeger: ${notProcessed.diagnosis.jaeger_search_link}`,
    );
    expect(line).not.toContain('\n');
  });
  it('encodes ids with / and leaves out a non-http Jaeger link', () => {
    const order = { ...notProcessed, order_id: 'ORD/42', diagnosis: { ...notProcessed.diagnosis, summary: 'a\nb', jaeger_search_link: 'javascript:alert(1)' } };
    const line = orderChatLine(order as unknown as OrderDetail, now, 'https://gw.example');
    expect(line).toContain('https://gw.example/ui/orders/ORD%2F42');
    expect(line).not.toContain('Jaeger');
    expect(line).not.toContain('\n');
  });
  it('says closed for a closed order', () => {
    const line = orderChatLine(closed as unknown as OrderDetail, now, 'https://gw.example');
    expect(line.startsWith(`${closed.order_id} closed (`)).toBe(true);
  });
  it('board line', () => {
    expect(boardChatLine(12, 3, { order_id: 'ORD-1', stage: 'APPROVED', stuck_since: '2026-12-07T03:00:00Z' }, 'stage=APPROVED', 'https://gw/ui/stuck?stage=APPROVED', Date.parse('2026-12-07T03:47:03Z'))).toBe(
      '12 orders stuck (stage=APPROVED); oldest ORD-1 in APPROVED, stuck for 47m 3s — https://gw/ui/stuck?stage=APPROVED',
    );
  });
});

import { csvCell } from '../src/views/stuck-view';
describe('CSV export', () => {
  it('quotes and defuses formulas', () => {
    expect(csvCell('ORD-7')).toBe('ORD-7');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('=HYPERLINK("x")')).toBe(`"'=HYPERLINK(""x"")"`);
    expect(csvCell(null)).toBe('');
    expect(csvCell(3)).toBe('3');
  });
});
