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
  size: opt(int(4096, Number.MAX_SAFE_INTEGER)), mode: opt(int(0, 0o7777)), anonymous: opt(bool),
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

/** --tmpfs DST[:size=64m,mode=1777,ro] */
export function parseTmpfsFlag(s: string): VolumeMount {
  const colon = s.indexOf(':');
  const target = colon < 0 ? s : s.slice(0, colon);
  const m: VolumeMount = { type: 'tmpfs', target };
  for (const o of colon < 0 ? [] : s.slice(colon + 1).split(',').filter(Boolean)) {
    const [k, v] = o.split('=') as [string, string?];
    if (k === 'size' && v && SIZE_RE.test(v)) {
      const [, n, u] = SIZE_RE.exec(v)!;
      m.size = Number(n) * ({ '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 } as Record<string, number>)[u!.toLowerCase()]!;
      if (!Number.isSafeInteger(m.size) || m.size < 4096) throw new Error(`invalid --tmpfs "${s}": size is at least 4k`);
    } else if (k === 'mode' && v && /^[0-7]{1,4}$/.test(v)) m.mode = parseInt(v, 8);
    else if (k === 'ro' && v === undefined) m.readOnly = true;
    else if (k === 'rw' && v === undefined) m.readOnly = false;
    else throw new Error(`invalid --tmpfs "${s}": options are size=N[k|m|g], mode=OCTAL, ro, rw`);
  }
  const why = mountProblem([m]);
  if (why) throw new Error(`invalid --tmpfs "${s}": ${why}`);
  return m;
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
