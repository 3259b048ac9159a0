// .dockerignore as docker reads it: one pattern a line (`#` comments, blank lines skipped),
// Go filepath.Match syntax plus `**` for any number of directories, `!` re-including; the
// last pattern that matches a path decides, and a path under an excluded directory is
// excluded with it unless a later `!` pattern names it. Pure.

export interface IgnoreRule { re: RegExp; negate: boolean; dirPrefix: boolean }

/** Cleans a relative path: no leading `/` or `./`, no `.` segments, `..` resolved (a path above the root stays with its `..`). */
export function cleanRel(p: string): string {
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..' && out.length && out[out.length - 1] !== '..') out.pop();
    else out.push(seg);
  }
  return out.join('/');
}

/** A pattern (Go filepath.Match with `**`) as a regular expression over a whole relative path. */
export function patternRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        // `**/` matches zero or more directories; a trailing `**` anything below
        if (pattern[i + 1] === '/') { i++; re += '(?:.*/)?'; } else re += '.*';
      } else re += '[^/]*';
    } else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) { re += '\\['; continue; }
      let cls = pattern.slice(i + 1, close);
      if (cls.startsWith('^') || cls.startsWith('!')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else if (ch === '\\' && i + 1 < pattern.length) { re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'); }
    else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

export function parseIgnore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    if (negate) line = line.slice(1).trim();
    const clean = cleanRel(line);
    if (!clean) continue;
    rules.push({ re: patternRegExp(clean), negate, dirPrefix: true });
  }
  return rules;
}

/** True when the rules leave `rel` (a clean relative path) out of the context. */
export function ignored(rules: readonly IgnoreRule[], rel: string): boolean {
  if (!rel) return false;
  const parents: string[] = [];
  const segs = rel.split('/');
  for (let i = 1; i <= segs.length; i++) parents.push(segs.slice(0, i).join('/'));
  let out = false;
  for (const r of rules) {
    // a pattern matches the path itself or a directory it is under
    if (parents.some((p) => r.re.test(p))) out = !r.negate;
  }
  return out;
}
