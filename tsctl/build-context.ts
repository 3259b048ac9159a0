// COPY and ADD of `tsctl build`: the files of the build context a step names, as one layer
// tar. The context is read with lstat only: a symlink is copied as a link (never the file it
// points to, inside the context or not), a source path that leaves the context (`../x`) or
// passes through a symlink is refused, and .dockerignore leaves its paths out. The cache key
// of a step is a digest of what it copies (paths, types, modes, owners, link targets and
// file contents, not times), so touching a file does not invalidate a build, editing it does.
// ADD unpacks a local tar (plain or compressed) into the destination without writing by name; URLs are refused.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, open, readdir, readlink, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { scratchDir } from './scratch.js';
import type { Writable } from 'node:stream';
import * as tar from 'tar';
import { encodeHeader, roundBlock, TAR_END } from '../shared/tar-encode.js';
import { DockerfileError } from './dockerfile.js';
import { cleanRel, ignored, patternRegExp, type IgnoreRule } from './dockerignore.js';

/** One entry of a layer: where it lands (relative to the image root) and where its bytes are. */
export interface LayerEntry {
  name: string; type: '0' | '2' | '5'; mode: number; uid: number; gid: number; mtime: number; size: number;
  linkname?: string;
  /** The host file whose `size` bytes are the entry's content (type '0'). */
  path?: string;
  /** A directory the step makes only because a path goes through it (the image's own, if it has one, wins). */
  implied?: boolean;
}

export interface CopyStep {
  line: number; keyword: 'COPY' | 'ADD';
  sources: string[]; dest: string; workdir: string;
  chown?: { uid: number; gid: number };
  /** --chmod: the mode of every copied file and directory (links keep theirs; ADD's unpacked archive entries too) */
  chmod?: number;
}

export interface Context {
  dir: string; rules: IgnoreRule[];
  /**
   * A stage's filesystem (COPY --from): a symlink on a source's way, or the source itself, is
   * followed inside `dir` as the stage's container would see it (/bin -> usr/bin), as docker
   * does. The build context is not: a source there may not pass through a link.
   */
  scoped?: boolean;
}

/** How many symlinks one source may pass through, as the kernel's limit (ELOOP). */
const MAX_LINKS = 40;

/**
 * `rel` resolved inside `root` with every symlink followed as if `root` were `/` (an absolute
 * target starts again at `root`, `..` stops there): a real path under `root`, or a one-line
 * reason. Nothing is read outside `root`: each step is an lstat/readlink of a path built from
 * segments already resolved.
 */
export async function resolveInRoot(root: string, rel: string): Promise<{ path: string } | { why: string }> {
  let todo = rel.split('/').filter((x) => x && x !== '.');
  let done: string[] = [];
  let links = 0;
  while (todo.length) {
    const seg = todo.shift()!;
    if (seg === '..') { done.pop(); continue; }
    const here = join(root, ...done, seg);
    const st = await lstat(here).catch(() => null);
    if (!st) return { why: 'no such file in the stage' };
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) return { why: `more than ${MAX_LINKS} symlinks on the way` };
      const target = await readlink(here);
      if (target.startsWith('/')) done = [];
      todo = [...target.split('/').filter((x) => x && x !== '.'), ...todo];
      continue;
    }
    if (todo.length && !st.isDirectory()) return { why: `${[...done, seg].join('/')} is not a directory` };
    done.push(seg);
  }
  return { path: done.join('/') };
}

/** What a COPY/ADD puts in its layer, and the temp dirs (unpacked archives) to remove afterwards. */
export interface Collected {
  entries: LayerEntry[]; temps: string[];
  /** One file (or link) with a destination without a trailing `/`: it goes inside when the image has a directory there. */
  single?: { target: string; name: string };
}

const fail = (s: CopyStep, why: string) => new DockerfileError(s.line, `${s.keyword} ${why}`);
const GLOB = /[*?[]/;

/** A user or group of `--chown`: an id, or a name the image's /etc/passwd or /etc/group gives. */
const CHOWN_PART = String.raw`(\d{1,10}|[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?)`;
const CHOWN_RE = new RegExp(`^${CHOWN_PART}(?::${CHOWN_PART})?$`);

/** The image's account files, as text, for `--chown` by name (undefined: the image has none). */
export interface IdFiles { passwd?: string; group?: string }

/** `--chown`'s form only (ids in range, names well formed): the names are looked up when the step runs. Pure. */
export function checkChownForm(v: string, line: number): RegExpExecArray {
  const m = CHOWN_RE.exec(v);
  if (!m) throw new DockerfileError(line, `--chown=${v.slice(0, 80)}: USER[:GROUP], each an id or a name`);
  if ([m[1], m[2]].some((p) => p !== undefined && /^\d+$/.test(p) && Number(p) > 0xfffffffe)) throw new DockerfileError(line, `--chown=${v}: an id is out of range`);
  return m;
}

/** Whether `--chown=v` names a user or group (so the image's account files must be read). Pure. */
export const chownNeedsNames = (v: string): boolean => v.split(':').some((p) => p !== '' && !/^\d+$/.test(p));

/**
 * `--chown=USER[:GROUP]`, each an id or a name looked up in the image's /etc/passwd and
 * /etc/group as docker does (a user alone gives its id as the group id too). Without `files`
 * only the form is checked and a name is refused. Pure.
 */
export function parseChown(v: string, line: number, files?: IdFiles): { uid: number; gid: number } {
  const m = checkChownForm(v, line);
  const id = (part: string, kind: 'user' | 'group'): number => {
    if (/^\d+$/.test(part)) return Number(part);
    if (!files) throw new DockerfileError(line, `--chown=${v}: a ${kind} name needs the image's /etc/${kind === 'user' ? 'passwd' : 'group'}`);
    const text = kind === 'user' ? files.passwd : files.group;
    if (text === undefined) throw new DockerfileError(line, `--chown=${v}: the image has no /etc/${kind === 'user' ? 'passwd' : 'group'} to look ${part} up in`);
    const found = lookupId(text, part);
    if (found === undefined) throw new DockerfileError(line, `--chown=${v}: no ${kind} ${part} in the image's /etc/${kind === 'user' ? 'passwd' : 'group'}`);
    return found;
  };
  const uid = id(m[1]!, 'user'), gid = m[2] !== undefined ? id(m[2], 'group') : uid;
  if (uid > 0xfffffffe || gid > 0xfffffffe) throw new DockerfileError(line, `--chown=${v}: an id is out of range`);
  return { uid, gid };
}

/** The id (third field) of the line of /etc/passwd or /etc/group whose first field is `name`. Pure. */
function lookupId(text: string, name: string): number | undefined {
  for (const l of text.split('\n')) {
    const f = l.split(':');
    if (f[0] === name && f.length > 2 && /^\d{1,10}$/.test(f[2]!) && Number(f[2]) <= 0xfffffffe) return Number(f[2]);
  }
  return undefined;
}

/** `--chmod=MODE` (COPY and ADD, as BuildKit): octal, applied to what is copied. Pure. */
export function parseChmod(v: string, line: number): number {
  if (!/^[0-7]{3,4}$/.test(v)) throw new DockerfileError(line, `--chmod=${v.slice(0, 40)}: an octal mode like 755 or 0644`);
  return parseInt(v, 8);
}

/** A source as a clean path inside the context, or a one-line refusal. Pure. */
export function contextPath(s: CopyStep, src: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(src)) throw fail(s, `${src}: URLs are not fetched by this build (download the file into the context)`);
  const clean = cleanRel(src);
  if (clean === '..' || clean.startsWith('../')) throw fail(s, `${src}: outside the build context (forbidden path)`);
  return clean;
}

/** Every path of the context, relative, with its lstat: walked without following any symlink. */
async function walk(dir: string, rel: string, ctx: Context, out: Map<string, import('node:fs').Stats>): Promise<void> {
  const anyNegation = ctx.rules.some((r) => r.negate);
  for (const n of (await readdir(join(dir, rel))).sort()) {
    const p = rel ? `${rel}/${n}` : n;
    const st = await lstat(join(dir, p));
    const skip = ignored(ctx.rules, p);
    if (!skip) out.set(p, st);
    // an excluded directory is walked only when a `!` pattern may bring something under it back
    if (st.isDirectory() && (!skip || anyNegation)) await walk(dir, p, ctx, out);
  }
}

/** The sources a step names, each resolved without passing through a symlink (a stage's: through its links). */
async function expand(s: CopyStep, ctx: Context): Promise<{ src: string; base: string }[]> {
  const found: { src: string; base: string }[] = [];
  let all: Map<string, import('node:fs').Stats> | undefined;
  for (const src of s.sources) {
    const clean = contextPath(s, src);
    if (GLOB.test(clean)) {
      all ??= await (async () => { const m = new Map(); await walk(ctx.dir, '', ctx, m); return m; })();
      const re = patternRegExp(clean);
      const hits = [...all.keys()].filter((p) => re.test(p));
      if (!hits.length) throw fail(s, `${src}: no file in the ${ctx.scoped ? 'stage' : 'build context'} matches`);
      found.push(...hits.map((h) => ({ src: h, base: h.split('/').pop()! })));
      continue;
    }
    if (ctx.scoped) {
      // named as the source says (COPY --from=s /lib/libx.so /out/ gives /out/libx.so), read where it leads
      const r = await resolveInRoot(ctx.dir, clean);
      if ('why' in r) throw fail(s, `${src}: ${r.why}`);
      found.push({ src: r.path, base: clean.split('/').pop() || r.path.split('/').pop()! });
      continue;
    }
    // each directory on the way must be a real directory of the context, not a link elsewhere
    const segs = clean ? clean.split('/') : [];
    for (let i = 1; i < segs.length; i++) {
      const st = await lstat(join(ctx.dir, ...segs.slice(0, i))).catch(() => null);
      if (!st) throw fail(s, `${src}: no such file in the build context`);
      if (st.isSymbolicLink()) throw fail(s, `${src}: ${segs.slice(0, i).join('/')} is a symlink; a source may not pass through one`);
      if (!st.isDirectory()) throw fail(s, `${src}: ${segs.slice(0, i).join('/')} is not a directory`);
    }
    if (!(await lstat(join(ctx.dir, clean)).catch(() => null))) throw fail(s, `${src}: no such file in the build context`);
    if (clean && ignored(ctx.rules, clean)) throw fail(s, `${src}: excluded by .dockerignore`);
    found.push({ src: clean, base: clean.split('/').pop()! });
  }
  return found;
}

const WH = '.wh.';

/**
 * The entries of a local tar (plain or compressed, node-tar's parser) for ADD. Nothing is
 * written by path: each file's bytes go to `tmp/<n>`, so a hostile name (`..`, absolute, through
 * a link the archive made) can reach no file of the host; names are cleaned to the archive's
 * root (a `..` above it is refused), links keep their targets as data, hard links share their
 * first file's bytes, devices and fifos are skipped (docker's ADD makes them; a build here does not).
 */
async function readArchive(file: string, tmp: string, fail: (why: string) => Error): Promise<Omit<LayerEntry, 'implied'>[]> {
  const items: Omit<LayerEntry, 'implied'>[] = [];
  const byName = new Map<string, Omit<LayerEntry, 'implied'>>();
  const writes: Promise<void>[] = [];
  let problem: Error | undefined;
  let n = 0;
  await new Promise<void>((resolve, reject) => {
    const parser = new tar.Parser({
      strict: true,
      onReadEntry: (e) => {
        const name = cleanRel(e.path);
        const meta = { mode: (e.mode ?? 0o644) & 0o7777, uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: Math.floor((e.mtime?.getTime() ?? 0) / 1000) };
        const refuse = (why: string) => { problem ??= fail(why); e.resume(); };
        if (name === '..' || name.startsWith('../')) return refuse(`entry ${JSON.stringify(e.path.slice(0, 100))} climbs out of the archive's root`);
        if (name.split('/').pop()!.startsWith(WH)) return refuse(`entry ${JSON.stringify(e.path.slice(0, 100))}: names beginning with ${WH} are layer whiteouts`);
        if (!name) { e.resume(); return; }
        // a write through a link the archive made would be refused when the layer is unpacked: refuse it here
        const segs = name.split('/');
        for (let i = 1; i < segs.length; i++) {
          if (byName.get(segs.slice(0, i).join('/'))?.type === '2') return refuse(`entry ${JSON.stringify(e.path.slice(0, 100))} goes through the archive's symlink ${segs.slice(0, i).join('/')}`);
        }
        let it: Omit<LayerEntry, 'implied'> | undefined;
        if (e.type === 'Directory') it = { name, type: '5', ...meta, size: 0 };
        else if (e.type === 'SymbolicLink') it = { name, type: '2', ...meta, size: 0, linkname: e.linkpath ?? '' };
        else if (e.type === 'Link') {
          const first = byName.get(cleanRel(e.linkpath ?? ''));
          if (!first || first.type !== '0') return refuse(`hard link ${JSON.stringify(e.path.slice(0, 100))} to ${JSON.stringify((e.linkpath ?? '').slice(0, 100))}, which is no earlier file of the archive`);
          it = { ...first, name, ...meta };
        } else if (e.type === 'File' || e.type === 'OldFile' || e.type === 'ContiguousFile') {
          const path = join(tmp, String(n++));
          it = { name, type: '0', ...meta, size: e.size ?? 0, path };
          const out = createWriteStream(path, { mode: 0o600 });
          writes.push(new Promise<void>((res, rej) => { out.on('finish', res); out.on('error', rej); }));
          e.pipe(out);
        }
        if (!it) { e.resume(); return; }
        if (e.type !== 'File' && e.type !== 'OldFile' && e.type !== 'ContiguousFile') e.resume();
        items.push(it);
        byName.set(name, it);
      },
    });
    parser.on('error', (err: Error) => reject(fail(`not a readable tar archive (${err.message.slice(0, 200)})`)));
    parser.on('end', () => resolve());
    const src = createReadStream(file);
    src.on('error', reject);
    src.pipe(parser as unknown as NodeJS.WritableStream);
  });
  await Promise.all(writes);
  if (problem) throw problem;
  // a later entry of a name replaces an earlier one, as unpacking would
  const last = new Map(items.map((i) => [i.name, i]));
  return [...last.values()];
}

const TAR_MAGIC = (b: Buffer) => b.length >= 262 && b.toString('latin1', 257, 262) === 'ustar';
const GZIP_MAGIC = (b: Buffer) => b[0] === 0x1f && b[1] === 0x8b;

/** 'tar' or 'gzip' when ADD should unpack the file, 'other' for a compression it does not read, null for a plain file. */
async function archiveKind(path: string): Promise<'tar' | 'gzip' | 'other' | null> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(512);
    const { bytesRead } = await fh.read(b, 0, 512, 0);
    const head = b.subarray(0, bytesRead);
    if (GZIP_MAGIC(head)) return 'gzip';
    if (TAR_MAGIC(head)) return 'tar';
    if (head.toString('latin1', 0, 3) === 'BZh' || head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'other';
    return null;
  } finally { await fh.close(); }
}

/** The entries a COPY/ADD step puts in its layer (parents of the destination included). */
export async function collect(s: CopyStep, ctx: Context): Promise<Collected> {
  const temps: string[] = [];
  try {
    return await collectInto(s, ctx, temps);
  } catch (err) {
    await removeTemps(temps);
    throw err;
  }
}

async function collectInto(s: CopyStep, ctx: Context, temps: string[]): Promise<Collected> {
  const srcs = await expand(s, ctx);
  const destAbs = posix.resolve(s.workdir || '/', s.dest);
  const dest = cleanRel(destAbs);
  const destIsDir = s.dest.endsWith('/') || s.sources.length > 1 || srcs.length > 1;
  const out = new Map<string, LayerEntry>();
  let single: { target: string; name: string } | undefined;
  const rootOwn = s.chown ?? { uid: 0, gid: 0 };
  const dir = (name: string) => { if (name && !out.has(name)) out.set(name, { name, type: '5', mode: 0o755, ...rootOwn, mtime: 0, size: 0, implied: true }); };
  const parents = (name: string) => { const segs = name.split('/'); for (let i = 1; i < segs.length; i++) dir(segs.slice(0, i).join('/')); };
  // one path of the context (file, dir or link) placed at `target`
  const place = async (base: string, rel: string, target: string, rules: IgnoreRule[]) => {
    const host = rel ? join(base, rel) : base;
    if (posix.basename(target).startsWith(WH)) throw fail(s, `${rel || target}: names beginning with ${WH} are layer whiteouts and cannot be copied`);
    const st = await lstat(host);
    const meta = { mode: s.chmod !== undefined && !st.isSymbolicLink() ? s.chmod : st.mode & 0o7777, ...rootOwn, mtime: Math.floor(st.mtimeMs / 1000) };
    if (st.isSymbolicLink()) {
      if (target) out.set(target, { name: target, type: '2', ...meta, size: 0, linkname: await readlink(host) });
    } else if (st.isFile()) {
      if (!target) throw fail(s, `${rel || '.'}: a file cannot replace the image's root directory`);
      out.set(target, { name: target, type: '0', ...meta, size: st.size, path: host });
    } else if (st.isDirectory()) {
      // the copied directory itself is the destination: made as docker makes it, not given the source's mode
      if (target) { if (rel) out.set(target, { name: target, type: '5', ...meta, size: 0 }); else dir(target); }
      for (const n of (await readdir(host)).sort()) {
        const r = rel ? `${rel}/${n}` : n;
        if (rules.length && ignored(rules, r)) continue;
        await place(base, r, target ? `${target}/${n}` : n, rules);
      }
    }
    // sockets, fifos and devices of a context are not copied (docker refuses devices too)
  };
  for (const { src, base } of srcs) {
    const host = join(ctx.dir, src);
    const st = await lstat(host);
    if (s.keyword === 'ADD' && st.isFile()) {
      const kind = await archiveKind(host);
      if (kind === 'other') throw fail(s, `${src}: bzip2 and xz archives are not unpacked by this build (use a plain or gzip tar)`);
      if (kind) {
        const tmp = scratchDir('add');
        temps.push(tmp);
        const items = await readArchive(host, tmp, (why) => fail(s, `${src}: ${why}`));
        parents(dest ? `${dest}/x` : 'x');
        if (dest) dir(dest);
        for (const it of items) {
          const target = dest ? `${dest}/${it.name}` : it.name;
          parents(target);
          const ids = s.chown ?? { uid: it.uid, gid: it.gid };
          out.set(target, { ...it, ...ids, name: target });
        }
        continue;
      }
    }
    // a directory's contents go into the destination; a file or link lands at dest or dest/<name>
    const target = st.isDirectory() ? dest : destIsDir ? posix.join(dest, base) : dest;
    if (!st.isDirectory() && !destIsDir && !dest) throw fail(s, `${src}: a destination of / for one file needs a trailing slash`);
    parents(target || 'x');
    if (st.isDirectory() && dest) dir(dest);
    await placeFromContext(place, ctx, src, target);
    if (srcs.length === 1 && !destIsDir && !st.isDirectory()) single = { target, name: base };
  }
  // an entry's parents come before it (sorted: a dir's name is a prefix of its children's)
  const entries = [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { entries, temps, ...(single ? { single } : {}) };
}

/** Places a context source, its .dockerignore rules checked against context-relative paths. */
async function placeFromContext(place: (base: string, rel: string, target: string, rules: IgnoreRule[]) => Promise<void>,
  ctx: Context, src: string, target: string): Promise<void> {
  const base = join(ctx.dir, src);
  if (!ctx.rules.length) return place(base, '', target, []);
  // the rules match paths relative to the context; under a copied directory they get its prefix
  const shifted = ctx.rules.map((r) => ({ ...r, re: { test: (p: string) => r.re.test(src ? `${src}/${p}` : p) } as unknown as RegExp }));
  return place(base, '', target, shifted);
}

/** The cache key part of a COPY/ADD: its entries' metadata and contents (times left out). */
export async function contentDigest(entries: readonly LayerEntry[]): Promise<string> {
  const h = createHash('sha256');
  for (const e of entries) {
    h.update(JSON.stringify([e.name, e.type, e.mode, e.uid, e.gid, e.size, e.linkname ?? '']));
    if (e.type === '0' && e.path) await readExactly(e.path, e.size, async (b) => { h.update(b); });
  }
  return `sha256:${h.digest('hex')}`;
}

/** Writes the entries as a layer tar; resolves with its sha256 (the diff_id) and size. */
export async function writeLayer(entries: readonly LayerEntry[], out: Writable): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  // a write error (ENOSPC in the temp dir) ends the step with its code, never an unhandled event
  let failed: Error | undefined;
  let wake: (() => void) | undefined;
  out.on('error', (e) => { failed ??= e; wake?.(); });
  const write = async (b: Buffer) => {
    if (failed) throw failed;
    hash.update(b);
    size += b.length;
    if (!out.write(b)) await new Promise<void>((r) => { wake = r; out.once('drain', r); });
    if (failed) throw failed;
  };
  for (const e of entries) {
    await write(encodeHeader({ name: e.type === '5' ? `${e.name}/` : e.name, mode: e.mode, uid: e.uid, gid: e.gid, size: e.type === '0' ? e.size : 0, mtime: e.mtime, type: e.type, ...(e.linkname !== undefined ? { linkname: e.linkname } : {}) }));
    if (e.type === '0' && e.path) {
      await readExactly(e.path, e.size, write);
      const pad = roundBlock(e.size) - e.size;
      if (pad) await write(Buffer.alloc(pad));
    }
  }
  await write(TAR_END);
  await new Promise<void>((resolve, reject) => {
    if (failed) return reject(failed);
    out.once('error', reject);
    out.end((err?: Error | null) => (err ? reject(err) : resolve()));
  });
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/** Writes the layer into a temp file; the caller streams it and removes it. */
export async function layerFile(entries: readonly LayerEntry[], dir: string): Promise<{ file: string; digest: string; size: number }> {
  const file = join(dir, `tsctl-layer-${process.pid}-${randomBytes(6).toString('hex')}.tar`);
  try {
    const r = await writeLayer(entries, createWriteStream(file, { mode: 0o600 }));
    return { file, ...r };
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  }
}

/** Exactly `size` bytes of a file (zeros where it shrank since lstat, cut where it grew), so a header never lies. */
async function readExactly(path: string, size: number, sink: (b: Buffer) => Promise<void>): Promise<void> {
  const fh = await open(path, 'r');
  let left = size;
  try {
    const buf = Buffer.alloc(1 << 16);
    while (left > 0) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, left), size - left);
      if (bytesRead === 0) break;
      await sink(Buffer.from(buf.subarray(0, bytesRead)));
      left -= bytesRead;
    }
  } finally { await fh.close(); }
  if (left > 0) await sink(Buffer.alloc(left));
}

export async function removeTemps(temps: readonly string[]): Promise<void> {
  for (const t of temps) await rm(t, { recursive: true, force: true });
}
