// WWW-Authenticate challenges of the distribution API (RFC 7235): `Bearer realm=…,service=…,
// scope=…` for token auth, `Basic realm=…` for basic. Pure.

export interface Challenge { scheme: string; params: Record<string, string> }

/** The first challenge of a header; quoted values may hold commas and escaped quotes. */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  let rest = m[2];
  const re = /^\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)/s;
  for (let i = 0; i < 32 && rest.trim() !== ''; i++) {
    const p = re.exec(rest);
    if (!p) break;
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
    rest = rest.slice(p[0].length);
  }
  return { scheme: m[1].toLowerCase(), params };
}

/** The token endpoint's URL for a Bearer challenge; the realm must be http(s). */
export function tokenUrl(c: Challenge, fallbackScope: string): URL | string {
  const realm = c.params.realm;
  if (!realm) return 'the registry asked for a token but named no realm';
  let u: URL;
  try { u = new URL(realm); } catch { return `the registry's token realm "${realm.slice(0, 100)}" is not a URL`; }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return `the registry's token realm "${realm.slice(0, 100)}" is not http(s)`;
  if (c.params.service) u.searchParams.set('service', c.params.service);
  for (const s of (c.params.scope ?? fallbackScope).split(' ')) if (s) u.searchParams.append('scope', s);
  return u;
}
