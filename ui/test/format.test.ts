import { describe, expect, it } from 'vitest';
import { formatClock, formatCount, formatDateTime, formatDuration, formatShare, parseTime, secondsSince } from '../src/lib/format';

describe('formatDuration', () => {
  it('writes the forms the board and the chat line use', () => {
    expect(formatDuration(47 * 60 + 3)).toBe('47m 3s');
    expect(formatDuration(3 * 3600 + 12 * 60 + 59)).toBe('3h 12m');
    expect(formatDuration(2 * 86400 + 4 * 3600 + 5)).toBe('2d 4h');
    expect(formatDuration(47 * 60)).toBe('47m');
    expect(formatDuration(3600)).toBe('1h');
    expect(formatDuration(86400)).toBe('1d');
    expect(formatDuration(42)).toBe('42s');
    expect(formatDuration(4.25)).toBe('4.3s');
    expect(formatDuration(3)).toBe('3s');
    expect(formatDuration(0.35)).toBe('350ms');
    expect(formatDuration(0.0000008)).toBe('<1ms');
    expect(formatDuration(0)).toBe('0ms');
  });
  it('handles negative, null and non-finite', () => {
    expect(formatDuration(-90)).toBe('-1m 30s');
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(undefined)).toBe('—');
    expect(formatDuration(Number.NaN)).toBe('—');
  });
});

describe('times', () => {
  it('prints UTC', () => {
    expect(formatClock('2026-12-07T03:23:09.210Z')).toBe('03:23:09Z');
    expect(formatClock('2026-12-07T03:23:09.210Z', true)).toBe('03:23:09.210Z');
    expect(formatDateTime('2026-12-07T03:23:09.210Z')).toBe('2026-12-07 03:23:09Z');
    expect(formatClock(null)).toBe('—');
    expect(parseTime('garbage')).toBeNull();
    expect(secondsSince('2026-12-07T03:23:00.000Z', Date.parse('2026-12-07T03:24:00.500Z'))).toBe(60.5);
  });
  it('counts and shares', () => {
    expect(formatCount(1204)).toBe('1,204');
    expect(formatShare(0.125)).toBe('12.5%');
    expect(formatShare(1)).toBe('100%');
    expect(formatShare(null)).toBe('—');
  });
});
