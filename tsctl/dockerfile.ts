// The Dockerfile as data: lines joined at their escape character, comments dropped, each
// instruction split into its arguments (JSON exec form or shell form), and the `$X`, `${X}`,
// `${X:-default}`, `${X:+word}` substitution docker applies to every instruction but RUN, CMD
// and ENTRYPOINT (the shell expands those), and BuildKit's here-documents (`RUN <<EOF`,
// `COPY <<EOF /dest`): the lines after such an instruction, up to the delimiter, are its
// bodies and not instructions. Pure: no file, no cluster, so every malformed shape is a unit
// test; a problem is one DockerfileError naming its line.

export class DockerfileError extends Error {
  constructor(readonly line: number, readonly reason: string) {
    super(`Dockerfile:${line}: ${reason}`);
    this.name = 'DockerfileError';
  }
}

export const INSTRUCTIONS = ['FROM', 'COPY', 'ADD', 'RUN', 'ENV', 'WORKDIR', 'USER', 'CMD', 'ENTRYPOINT', 'EXPOSE', 'LABEL', 'ARG', 'STOPSIGNAL', 'SHELL', 'ONBUILD', 'MAINTAINER', 'VOLUME', 'HEALTHCHECK'] as const;
export type Keyword = typeof INSTRUCTIONS[number];

/**
 * A here-document: `<<NAME` (its body's `$X` expanded where the instruction expands), `<<"NAME"`
 * or `<<'NAME'` (taken as written), `<<-NAME` (leading tabs of each line dropped). `raw` is the
 * lines as written, for RUN's shell, which reads the here-document itself.
 */
export interface Heredoc { name: string; raw: string; body: string; expand: boolean; stripTabs: boolean }

/** One instruction as written: its first line, keyword, the text after it (continuations joined), its here-documents. */
export interface RawInstruction { line: number; keyword: Keyword; text: string; flags: Record<string, string>; escape: string; heredocs?: Heredoc[] }

/** Instructions whose text may open here-documents (BuildKit's set). */
const HEREDOC_KEYWORDS: ReadonlySet<string> = new Set(['RUN', 'COPY', 'ADD']);
/** Bounds on what one instruction may hold: the file's size bounds the rest. */
export const MAX_HEREDOCS = 16;

/** A Dockerfile past this is not a build file; it bounds the parser's memory. */
export const MAX_DOCKERFILE_BYTES = 1 << 20;

/** Splits the text into instructions (escape directive, continuations, comments, flags). */
export function parseDockerfile(src: string): RawInstruction[] {
  if (src.length > MAX_DOCKERFILE_BYTES) throw new DockerfileError(1, `the Dockerfile is larger than ${MAX_DOCKERFILE_BYTES} bytes`);
  if (src.includes('\0')) throw new DockerfileError(src.slice(0, src.indexOf('\0')).split('\n').length, 'a NUL byte is not text');
  const lines = src.replace(/^\uFEFF/, '').split(/\r?\n/);
  let escape = '\\';
  // parser directives: only at the very top, before any comment, blank line or instruction
  let i = 0;
  for (; i < lines.length; i++) {
    const m = /^#\s*([a-zA-Z]+)\s*=\s*(\S*)\s*$/.exec(lines[i]!);
    if (!m) break;
    const key = m[1]!.toLowerCase();
    if (key === 'escape') {
      if (m[2] !== '\\' && m[2] !== '`') throw new DockerfileError(i + 1, `invalid escape directive "${m[2]}": \\ or \``);
      escape = m[2];
    } else if (key !== 'syntax' && key !== 'check') break;
  }
  const out: RawInstruction[] = [];
  let start = 0;
  let acc: string | null = null;
  for (; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    // a comment line (even inside a continuation, as docker) and, inside one, a blank line
    if (trimmed.startsWith('#')) continue;
    if (acc === null && trimmed === '') continue;
    if (acc === null) { start = i + 1; acc = ''; }
    const body = raw.replace(/\s+$/, '');
    if (body.endsWith(escape)) {
      acc += body.slice(0, -1);
      continue;
    }
    acc += body;
    const ins = instruction(start, acc, escape);
    out.push(ins);
    acc = null;
    i = readHeredocs(ins, lines, i + 1) - 1;
  }
  if (acc !== null) {
    if (acc.trim() === '') throw new DockerfileError(start, 'the file ends inside a line continuation');
    out.push(instruction(start, acc, escape));
  }
  return out;
}

function instruction(line: number, text: string, escape: string): RawInstruction {
  const m = /^\s*(\S+)(?:\s+([\s\S]*))?$/.exec(text);
  if (!m) throw new DockerfileError(line, 'an empty instruction');
  const word = m[1]!;
  const keyword = word.toUpperCase() as Keyword;
  if (!/^[A-Za-z]+$/.test(word) || !INSTRUCTIONS.includes(keyword)) {
    throw new DockerfileError(line, `unknown instruction "${printable(word)}" (${INSTRUCTIONS.join(', ')})`);
  }
  let rest = (m[2] ?? '').trim();
  const flags: Record<string, string> = {};
  // --flag=value before the arguments (COPY --chown=1:1, FROM --platform=...)
  for (;;) {
    const f = /^--([a-z][a-z-]*)(?:=(\S*))?(?:\s+|$)/.exec(rest);
    if (!f) break;
    flags[f[1]!] = f[2] ?? '';
    rest = rest.slice(f[0].length);
  }
  if (!rest && keyword !== 'RUN') throw new DockerfileError(line, `${keyword} needs an argument`);
  if (!rest) throw new DockerfileError(line, 'RUN needs a command');
  return { line, keyword, text: rest, flags, escape };
}

/** The `<<NAME` markers of an instruction's text, outside quotes, in order. */
export function heredocMarkers(text: string): { name: string; quoted: boolean; stripTabs: boolean; start: number; end: number }[] {
  const out: { name: string; quoted: boolean; stripTabs: boolean; start: number; end: number }[] = [];
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) { if (ch === quote) quote = null; else if (ch === '\\' && quote === '"') i++; continue; }
    if (ch === '"' || ch === "'") { quote = ch; continue; }
    if (ch === '\\') { i++; continue; }
    if (ch !== '<' || text[i + 1] !== '<' || text[i + 2] === '<') continue;
    const m = /^<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)\2/.exec(text.slice(i));
    if (!m) { i++; continue; }
    out.push({ name: m[3]!, quoted: m[2] !== '', stripTabs: m[1] === '-', start: i, end: i + m[0].length });
    i += m[0].length - 1;
  }
  return out;
}

/** Reads the bodies of `ins`'s here-documents from `lines` at `from`; returns the index after the last delimiter. */
function readHeredocs(ins: RawInstruction, lines: string[], from: number): number {
  if (!HEREDOC_KEYWORDS.has(ins.keyword) || (ins.keyword === 'RUN' && ins.text.startsWith('['))) return from;
  const marks = heredocMarkers(ins.text);
  if (!marks.length) return from;
  if (marks.length > MAX_HEREDOCS) throw new DockerfileError(ins.line, `more than ${MAX_HEREDOCS} here-documents in one instruction`);
  let i = from;
  ins.heredocs = marks.map((m) => {
    const body: string[] = [];
    for (;; i++) {
      if (i >= lines.length) throw new DockerfileError(ins.line, `here-document <<${m.name} is not closed: no line "${m.name}" after it`);
      const l = lines[i]!;
      if ((m.stripTabs ? l.replace(/^\t+/, '') : l) === m.name) break;
      body.push(l);
    }
    i++;
    const raw = body.map((l) => `${l}\n`).join('');
    return { name: m.name, raw, body: m.stripTabs ? body.map((l) => `${l.replace(/^\t+/, '')}\n`).join('') : raw, expand: !m.quoted, stripTabs: m.stripTabs };
  });
  return i;
}

const printable = (s: string) => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 40);

/** The JSON exec form (`["a","b"]`), or null when the text is shell form (docker falls back the same way). */
export function execForm(text: string): string[] | null {
  if (!text.startsWith('[')) return null;
  let v: unknown;
  try { v = JSON.parse(text); } catch { return null; }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) return null;
  return v as string[];
}

/** `$X`, `${X}`, `${X:-d}`, `${X-d}`, `${X:+w}`, `${X+w}`; `\$` stays a literal `$`. Unknown names are empty, as docker. */
export function substitute(text: string, vars: ReadonlyMap<string, string>, line: number, escape = '\\'): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === escape && text[i + 1] === '$') { out += '$'; i++; continue; }
    if (ch !== '$') { out += ch; continue; }
    const next = text[i + 1];
    if (next === '{') {
      // the matching brace: a default may hold another ${...}
      let close = -1;
      for (let j = i + 2, depth = 1; j < text.length; j++) {
        if (text[j] === '{' && text[j - 1] === '$') depth++;
        else if (text[j] === '}' && --depth === 0) { close = j; break; }
      }
      if (close < 0) throw new DockerfileError(line, `unterminated \${ in "${printable(text)}"`);
      const inner = text.slice(i + 2, close);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([\s\S]*))?$/.exec(inner);
      if (!m) throw new DockerfileError(line, `bad substitution \${${printable(inner)}}`);
      const [, name, op, word] = m;
      const has = vars.has(name!);
      const val = vars.get(name!) ?? '';
      const w = word === undefined ? '' : substitute(word, vars, line, escape);
      if (op === ':-') out += val !== '' ? val : w;
      else if (op === '-') out += has ? val : w;
      else if (op === ':+') out += val !== '' ? w : '';
      else if (op === '+') out += has ? w : '';
      else out += val;
      i = close;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (!m) { out += '$'; continue; }
    out += vars.get(m[0]) ?? '';
    i += m[0].length;
  }
  return out;
}

/**
 * Words of a shell-like argument list (COPY's sources, EXPOSE's ports): split on unquoted
 * whitespace, quotes removed, the escape character keeping the next one.
 */
export function words(text: string, line: number, escape = '\\'): string[] {
  const out: string[] = [];
  let cur = '', inWord = false, quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === quote) { quote = null; continue; }
      if (ch === escape && quote === '"' && i + 1 < text.length) { cur += text[++i]; continue; }
      cur += ch;
      continue;
    }
    if (ch === '"' || ch === "'") { quote = ch; inWord = true; continue; }
    if (ch === escape && i + 1 < text.length) { cur += text[++i]; inWord = true; continue; }
    if (/\s/.test(ch)) { if (inWord) out.push(cur); cur = ''; inWord = false; continue; }
    cur += ch; inWord = true;
  }
  if (quote) throw new DockerfileError(line, `unterminated ${quote} quote`);
  if (inWord) out.push(cur);
  return out;
}

/** `K=V K2="v 2"` pairs (ENV, LABEL), or the legacy `K V...` form of ENV. */
export function pairs(text: string, line: number, keyword: 'ENV' | 'LABEL' | 'ARG', escape = '\\'): [string, string | undefined][] {
  const w = words(text, line, escape);
  if (!w[0]!.includes('=')) {
    if (keyword === 'ARG') return w.map((k) => [k, undefined]);
    // ENV K some value: the rest of the line (as written, leading space removed) is the value
    const m = /^(\S+)\s+([\s\S]*)$/.exec(text);
    if (!m) throw new DockerfileError(line, `${keyword} ${printable(text)}: needs KEY=VALUE`);
    return [[m[1]!, words(m[2]!, line, escape).join(' ')]];
  }
  return w.map((p): [string, string | undefined] => {
    const eq = p.indexOf('=');
    if (eq <= 0) {
      if (keyword === 'ARG') return [p, undefined];
      throw new DockerfileError(line, `${keyword} "${printable(p)}": needs KEY=VALUE`);
    }
    return [p.slice(0, eq), p.slice(eq + 1)];
  });
}

/**
 * VOLUME's paths, after substitution: the JSON form (`["/a", "/b"]`) or words (`/a /b`), as
 * docker reads them. Each is absolute (a relative one could only fail at every run) and text.
 */
export function volumePaths(text: string, line: number, escape = '\\'): string[] {
  const list = execForm(text) ?? words(text, line, escape);
  if (!list.length) throw new DockerfileError(line, 'VOLUME needs a path');
  for (const p of list) {
    if (p === '') throw new DockerfileError(line, 'VOLUME: a path cannot be empty');
    if (!p.startsWith('/') || /[\0\n]/.test(p)) throw new DockerfileError(line, `VOLUME "${printable(p)}": an absolute path in the container`);
  }
  return list;
}
