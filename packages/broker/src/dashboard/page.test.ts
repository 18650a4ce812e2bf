import { describe, expect, it } from 'vitest';
import { DASHBOARD_HTML } from './page.js';

/** The page's one inline script, as the browser gets it (the template literal's escapes applied). */
function script(): string {
  const match = /<script>([\s\S]*)<\/script>/.exec(DASHBOARD_HTML);
  if (match === null) throw new Error('no <script> in the page');
  return match[1] as string;
}

describe('dashboard page', () => {
  it('has an inline script that parses (a quote escaped once in the template literal ends a JS string early)', () => {
    expect(() => new Function(script())).not.toThrow();
  });

  it('sends the admin token on every /api call and keeps it in sessionStorage only', () => {
    const code = script();
    // Every fetch of the page goes through api(), which adds the bearer header.
    expect(code.match(/\bfetch\(/g)).toHaveLength(1);
    expect(code).toMatch(/function api\(path\) \{[^}]*authorization: 'Bearer ' \+ token/);
    expect(code).not.toMatch(/localStorage|document\.cookie/);
  });
});
