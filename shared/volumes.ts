// What a container mounts besides its image, as docker's -v and --tmpfs say it: a host path
// (bind), a named volume (a directory the node keeps for that name, shared by every container
// of the node that names it, kept after they go), or a tmpfs (memory, its size enforced by the
// kernel). Pure: parsing the flags and the checks the controller repeats on every request.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { bool, int, obj, oneOf, opt, str, type Check } from './validate.js';

export interface VolumeMount {
  type: 'bind' | 'volume' | 'tmpfs';
  /** bind: an absolute host path; volume: the volume's name; tmpfs: none */
  source?: string;
  target: string;
  readOnly?: boolean;
  /** tmpfs only: size in bytes and the root's mode */
  size?: number;
  mode?: number;
  /**
   * volume only: docker's anonymous volume (`-v /path`, or an image's VOLUME no -v covers), its
   * name 64 random hex digits the controller picks; `rm -v` and `--rm` remove it with the container.
   */
  anonymous?: boolean;
  /** volume only: --mount's volume-nocopy: an empty volume is not filled from the image's path */
  noCopy?: boolean;
}

export const VOLUME_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * Entity of a volume's events: one subject token (lower-case, no dots). A name that already is
 * one keeps it readable (`vol-cache`); any other (capitals, dots, long) is its sha256's first
 * 40 hex digits under `volh-`, so two names never share a token by the prefix.
 */
export const volumeEntity = (name: string): string =>
  /^[a-z0-9][a-z0-9_-]{0,99}$/.test(name) ? `vol-${name}` : `volh-${createHash('sha256').update(name).digest('hex').slice(0, 40)}`;

/** The view's key of a node's volume (names and node ids hold no '/'). */
export const volumeKey = (node: string, name: string): string => `${node}/${name}`;

/** The named volumes a container's mounts use. */
export const volumesOf = (ms: VolumeMount[] | undefined): string[] => (ms ?? []).filter((m) => m.type === 'volume').map((m) => m.source!);
/** Where a container's own kernel views are: a mount over them would hide or replace them. */
const RESERVED = ['/proc', '/sys', '/dev'];
export const MAX_MOUNTS = 64;

export const mountCheck: Check<VolumeMount> = obj({
  type: oneOf('bind', 'volume', 'tmpfs'), source: opt(str(4096)), target: str(4096), readOnly: opt(bool),
  size: opt(int(4096, Number.MAX_SAFE_INTEGER)), mode: opt(int(0, 0o7777)), anonymous: opt(bool), noCopy: opt(bool),
}) as Check<VolumeMount>;

/** A clean absolute path: no '.', '..', empty or trailing components. */
const cleanAbsolute = (p: string) => p.startsWith('/') && (p === '/' || p.split('/').slice(1).every((c) => c !== '' && c !== '.' && c !== '..')) && !p.includes('\0');

/** Why these mounts cannot be, or undefined. */
export function mountProblem(ms: VolumeMount[]): string | undefined {
  if (ms.length > MAX_MOUNTS) return `more than ${MAX_MOUNTS} mounts`;
  const seen = new Set<string>();
  for (const m of ms) {
    if (!cleanAbsolute(m.target) || m.target === '/') return `mount target "${m.target.slice(0, 200)}" is not a clean absolute path below /`;
    if (RESERVED.some((r) => m.target === r || m.target.startsWith(`${r}/`))) return `mount target ${m.target} is the container's own ${m.target.split('/')[1]}: refused`;
    if (seen.has(m.target)) return `two mounts on ${m.target}`;
    seen.add(m.target);
    if (m.type === 'bind' && (!m.source || !cleanAbsolute(m.source))) return `bind source "${(m.source ?? '').slice(0, 200)}" is not a clean absolute host path`;
    // an anonymous volume is named by the controller: a client's request may leave it out
    if (m.type === 'volume' && !(m.anonymous && m.source === undefined) && (!m.source || !VOLUME_NAME_RE.test(m.source))) return `invalid volume name "${(m.source ?? '').slice(0, 200)}": letters, digits, _ . -`;
    if (m.type === 'tmpfs' && m.source !== undefined) return 'a tmpfs has no source';
    if (m.type !== 'tmpfs' && (m.size !== undefined || m.mode !== undefined)) return 'size= and mode= are tmpfs options';
    if (m.anonymous && m.type !== 'volume') return 'only a volume is anonymous';
    if (m.noCopy && m.type !== 'volume') return 'volume-nocopy is a volume option';
  }
  return undefined;
}

const SIZE_RE = /^([0-9]+)([kmg]?)$/i;

/** -v SRC:DST[:ro|rw] (SRC absolute: the host's path; else a volume's name), or -v DST: an anonymous volume. */
export function parseVolumeFlag(s: string): VolumeMount {
  const parts = s.split(':');
  if (parts.length === 1 && s.startsWith('/')) {
    const why = mountProblem([{ type: 'volume', target: s, anonymous: true }]);
    if (why) throw new Error(`invalid -v "${s}": ${why}`);
    return { type: 'volume', target: s, anonymous: true };
  }
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) throw new Error(`invalid -v "${s}": SRC:DST[:ro|rw] (SRC a host path or a volume name) or DST alone (an anonymous volume)`);
  const [src, dst, mode] = parts as [string, string, string?];
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') throw new Error(`invalid -v "${s}": the mode is ro or rw`);
  const m: VolumeMount = { type: src.startsWith('/') ? 'bind' : 'volume', source: src, target: dst, ...(mode === 'ro' ? { readOnly: true } : {}) };
  const why = mountProblem([m]);
  if (why) throw new Error(`invalid -v "${s}": ${why}`);
  return m;
}

/** A size as docker's tmpfs options write it: bytes, or k, m, g (binary units). */
function tmpfsSize(v: string | undefined, flag: string): number | undefined {
  const g = SIZE_RE.exec(v ?? '');
  if (!g) return undefined;
  const n = Number(g[1]) * ({ '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 } as Record<string, number>)[g[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(n) || n < 4096) throw new Error(`invalid ${flag}: size is at least 4k`);
  return n;
}

/** --tmpfs DST[:size=64m,mode=1777,ro] */
export function parseTmpfsFlag(s: string): VolumeMount {
  const colon = s.indexOf(':');
  const target = colon < 0 ? s : s.slice(0, colon);
  const m: VolumeMount = { type: 'tmpfs', target };
  for (const o of colon < 0 ? [] : s.slice(colon + 1).split(',').filter(Boolean)) {
    const [k, v] = o.split('=') as [string, string?];
    const size = k === 'size' ? tmpfsSize(v, `--tmpfs "${s}"`) : undefined;
    if (size !== undefined) m.size = size;
    else if (k === 'mode' && v && /^[0-7]{1,4}$/.test(v)) m.mode = parseInt(v, 8);
    else if (k === 'ro' && v === undefined) m.readOnly = true;
    else if (k === 'rw' && v === undefined) m.readOnly = false;
    else throw new Error(`invalid --tmpfs "${s}": options are size=N[k|m|g], mode=OCTAL, ro, rw`);
  }
  const why = mountProblem([m]);
  if (why) throw new Error(`invalid --tmpfs "${s}": ${why}`);
  return m;
}

/**
 * Docker's fields split as its CSV reader splits them: commas, and double quotes around a
 * field that holds one ("" inside is a quote). Undefined when a quote is left open.
 */
function csvFields(s: string): string[] | undefined {
  const out: string[] = [];
  let cur = '', quoted = false, i = 0;
  for (; i < s.length; i++) {
    const ch = s[i]!;
    if (quoted) {
      if (ch !== '"') cur += ch;
      else if (s[i + 1] === '"') { cur += '"'; i++; } else quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { out.push(cur); cur = ''; } else cur += ch;
  }
  if (quoted) return undefined;
  out.push(cur);
  return out;
}

const BOOL_VALUES: Record<string, boolean> = { '': true, true: true, '1': true, false: false, '0': false };

/**
 * --mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,volume-nocopy][,tmpfs-size=…,tmpfs-mode=…],
 * docker's long form (run, create). The type defaults to volume, and a volume without a source
 * is anonymous. What docker has and this engine does not (propagation other than rprivate,
 * volume drivers and their options, sub-paths) is refused by name, never dropped.
 */
export function parseMountFlag(s: string): VolumeMount {
  const bad = (why: string) => new Error(`invalid --mount "${s.slice(0, 200)}": ${why}`);
  const fields = csvFields(s);
  if (!fields) throw bad('a quote is not closed');
  let type: VolumeMount['type'] | undefined, source: string | undefined, target: string | undefined;
  let readOnly: boolean | undefined, noCopy: boolean | undefined, size: number | undefined, mode: number | undefined;
  for (const f of fields) {
    if (f === '') continue;
    const eq = f.indexOf('=');
    const k = (eq < 0 ? f : f.slice(0, eq)).trim().toLowerCase(), v = eq < 0 ? undefined : f.slice(eq + 1);
    // only the flags docker lets stand alone
    if (v === undefined && !['readonly', 'ro', 'volume-nocopy'].includes(k)) throw bad(`"${f.slice(0, 80)}" is not a key=value pair`);
    const flag = (): boolean => {
      const b = BOOL_VALUES[(v ?? '').toLowerCase()];
      if (b === undefined) throw bad(`${k} is true or false, not "${(v ?? '').slice(0, 80)}"`);
      return b;
    };
    switch (k) {
      case 'type':
        if (v !== 'bind' && v !== 'volume' && v !== 'tmpfs') throw bad(`type is bind, volume or tmpfs, not "${(v ?? '').slice(0, 80)}"`);
        type = v; break;
      case 'source': case 'src': source = v; break;
      case 'target': case 'destination': case 'dst': target = v; break;
      case 'readonly': case 'ro': readOnly = flag(); break;
      case 'volume-nocopy': noCopy = flag(); break;
      case 'tmpfs-size': size = tmpfsSize(v, `--mount "${s.slice(0, 200)}"`); if (size === undefined) throw bad('tmpfs-size is bytes, or a number with k, m or g'); break;
      case 'tmpfs-mode': if (!/^[0-7]{1,4}$/.test(v ?? '')) throw bad('tmpfs-mode is octal, as 1777'); mode = parseInt(v!, 8); break;
      // every bind is rprivate here: the container's mounts never reach the host's
      case 'bind-propagation': if (v !== 'rprivate') throw bad(`bind-propagation ${(v ?? '').slice(0, 40)} is not supported (binds are rprivate)`); break;
      case 'volume-driver': if (v !== 'local') throw bad(`volume driver "${(v ?? '').slice(0, 40)}" is not supported (local only)`); break;
      // macOS's option: docker ignores it on Linux too
      case 'consistency': if (!['consistent', 'cached', 'delegated', 'default'].includes(v ?? '')) throw bad('consistency is consistent, cached, delegated or default'); break;
      case 'volume-opt': case 'volume-label': case 'volume-subpath': case 'bind-nonrecursive': case 'bind-recursive': case 'tmpfs-options':
        throw bad(`${k} is not supported`);
      default: throw bad(`unknown key "${k.slice(0, 40)}"`);
    }
  }
  type ??= 'volume';
  if (!target) throw bad('target is required');
  if (type === 'bind' && !source) throw bad('a bind needs a source');
  if (type === 'tmpfs' && source) throw bad('a tmpfs has no source');
  if (type !== 'tmpfs' && (size !== undefined || mode !== undefined)) throw bad('tmpfs-size and tmpfs-mode are tmpfs options');
  if (type !== 'volume' && noCopy !== undefined) throw bad('volume-nocopy is a volume option');
  if (type === 'bind' && !source!.startsWith('/')) throw bad('a bind\'s source is an absolute host path');
  if (type === 'volume' && source?.startsWith('/')) throw bad('a volume\'s source is its name: use type=bind for a host path');
  const m: VolumeMount = {
    type, target, ...(source !== undefined && source !== '' ? { source } : {}), ...(type === 'volume' && !source ? { anonymous: true } : {}),
    ...(readOnly ? { readOnly: true } : {}), ...(noCopy ? { noCopy: true } : {}),
    ...(size !== undefined ? { size } : {}), ...(mode !== undefined ? { mode } : {}),
  };
  const why = mountProblem([m]);
  if (why) throw bad(why);
  return m;
}

/** --volumes-from CONTAINER[:ro|:rw]: whose volumes, and the mode that overrides theirs (none: each keeps its own). */
export function parseVolumesFrom(s: string): { ref: string; mode?: 'ro' | 'rw' } {
  const m = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,127})(?::(ro|rw))?$/.exec(s);
  if (!m) throw new Error(`invalid --volumes-from "${s.slice(0, 200)}": CONTAINER[:ro|:rw]`);
  return { ref: m[1]!, ...(m[2] ? { mode: m[2] as 'ro' | 'rw' } : {}) };
}

/**
 * The mounts a container takes from another's (docker's --volumes-from): its volumes and binds,
 * not its tmpfs (memory of its own). None on a target the new container mounts itself. They are
 * the other's: an anonymous one stays its owner's (rm -v of the new container leaves it). Pure.
 */
export function inheritedMounts(from: readonly VolumeMount[], mode: 'ro' | 'rw' | undefined, own: ReadonlySet<string>): VolumeMount[] {
  const out: VolumeMount[] = [];
  for (const m of from) {
    if (m.type === 'tmpfs' || own.has(m.target) || !m.source) continue;
    const ro = mode === undefined ? m.readOnly === true : mode === 'ro';
    // the volume is the other's: the new container's image is not copied into it
    out.push({ type: m.type, source: m.source, target: m.target, ...(ro ? { readOnly: true } : {}), ...(m.type === 'volume' ? { noCopy: true } : {}) });
  }
  return out;
}

/** An anonymous volume's name: 64 random hex digits, as docker's. */
export const ANONYMOUS_NAME_RE = /^[0-9a-f]{64}$/;

/** The anonymous volumes a container's mounts use (removed with it by rm -v and --rm). */
export const anonymousOf = (ms: VolumeMount[] | undefined): string[] => (ms ?? []).filter((m) => m.type === 'volume' && m.anonymous && m.source).map((m) => m.source!);

/** At most this many VOLUME paths in an image config are honoured (the mounts' own bound). */
export const MAX_IMAGE_VOLUMES = MAX_MOUNTS;

/**
 * Pure: an image config's `Volumes` keys as mount targets, cleaned as docker cleans them
 * (`/a/../b` is `/b`: a `..` cannot climb above the container's root). The image is hostile
 * input: a key that is not an absolute path, holds a NUL, or names / or the container's own
 * /proc, /sys, /dev is one line of error naming it.
 */
export function imageVolumeTargets(keys: readonly string[]): string[] {
  if (keys.length > MAX_IMAGE_VOLUMES) throw new Error(`the image declares ${keys.length} volumes, more than ${MAX_IMAGE_VOLUMES}`);
  const out: string[] = [];
  for (const k of keys) {
    const shown = k.slice(0, 200).replace(/[^\x20-\x7e]/g, '?');
    if (!k.startsWith('/') || k.includes('\0') || k.length > 4096) throw new Error(`the image declares volume "${shown}", not an absolute path`);
    const clean = posix.normalize(k).replace(/\/+$/, '') || '/';
    const why = mountProblem([{ type: 'volume', target: clean, anonymous: true }]);
    if (why) throw new Error(`the image declares volume "${shown}": ${why}`);
    if (!out.includes(clean)) out.push(clean);
  }
  return out;
}
