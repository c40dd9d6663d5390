// Guards of the CSP and the untrusted-text rule over the sources (cheap, and they catch a
// careless template before a browser test does).
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

const root = join(__dirname, '..');
const sources = files(join(root, 'src')).filter((f) => f.endsWith('.ts'));

describe('source rules', () => {
  it('has no inline style attribute, <style> element, unsafeHTML or innerHTML', () => {
    for (const f of sources) {
      const text = readFileSync(f, 'utf8');
      expect(text, f).not.toMatch(/\sstyle=/);
      expect(text, f).not.toMatch(/<style/i);
      expect(text, f).not.toMatch(/unsafeHTML|unsafeSVG|innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
      expect(text, f).not.toMatch(/\beval\(|new Function\(/);
    }
  });
  it('loads nothing from another origin', () => {
    const html = readFileSync(join(root, 'index.html'), 'utf8');
    expect(html).not.toMatch(/<script>(?!\s*<\/script>)/);
    for (const f of [...sources, join(root, 'src', 'styles.css'), join(root, 'index.html')]) {
      const text = readFileSync(f, 'utf8');
      expect(text, f).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
      expect(text, f).not.toMatch(/@import|url\(\s*["']?https?:/);
    }
  });
});
