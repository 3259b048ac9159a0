// The view's snapshots in binary: msgpack frames `[u32 length][msgpack]`, pure (no I/O).
// A full snapshot is made a chunk of containers at a time, so folding goes on between chunks:
// a chunk holds the containers as they were when it was encoded, and the last frame holds
// everything but the containers as of its own sequence plus every container that changed
// (or left) since the first chunk, so the whole equals the view at that sequence.
// A delta frame holds what changed since the one before (the controller's journal): it names
// the full snapshot it follows (`base`), so a journal left from an older snapshot is ignored.
// Containers are written compact (version 2): each one a tuple in a fixed field order (no key
// names), and the strings that repeat across containers (node, state, user, image, digest, args,
// env...) as indices into the frame's own string table, so a snapshot is about a third of the
// maps it replaced and reads back with those strings shared. A field that is not of its slot's
// kind, and any field the slots do not name, goes in the tuple's last item as a plain map:
// whatever the view holds reads back equal. Version 1 (maps) still reads.
import { Decoder, Encoder } from '@msgpack/msgpack';
import { isNot, Reader, WireError } from './msgpack.js';
import { Writer } from './msgpack-writer.js';
import { emptyView, indexOf, type ChangeTracker, type ClusterView, type ContainerView } from './reducer.js';

export const SNAPSHOT_VERSION = 2;
/** Versions readSnapshot takes: 1 wrote containers as maps. */
const READS = new Set([1, 2]);
/** Containers a chunk encodes: ~1 ms of work between two folds. */
export const CHUNK = 1000;

export class SnapshotError extends Error {
  constructor(message: string) { super(message); this.name = 'SnapshotError'; }
}

type Meta = Omit<ClusterView, 'containers' | 'nodes'>;
interface Frame {
  v?: number;
  /** containers as encoded, and (last or delta frame) ids that left */
  c?: ContainerView[]; d?: string[];
  /** version 2: containers as tuples, with the frame's string table */
  k?: unknown[][]; t?: string[];
  /** the last frame of a full snapshot: everything else, and the number of containers */
  meta?: Meta; nodes?: ClusterView['nodes']; count?: number;
  /** a delta: the full snapshot it follows and the sequence it brings the view to */
  base?: number; seq?: number;
}

const encoder = new Encoder({ ignoreUndefined: true });

function meta(view: ClusterView): Meta {
  const { containers: _c, nodes: _n, ...rest } = view;
  return rest;
}


// The tuple's slots: 0 inline value, 1 a string by the frame's table, 2 an array of strings by the table.
type Kind = 0 | 1 | 2;
/** The container tuple's slots in order (exported for shared/snapshot-lazy.ts, which reads a few of them). */
export const CONTAINER: [string, Kind][] = [
  ['id', 0], ['name', 0], ['node', 1], ['spec', 0], ['state', 1], ['desired', 1], ['createdAt', 0], ['requestedBy', 1], ['lastSeq', 0],
  ['pid', 0], ['ip', 0], ['exitCode', 0], ['signal', 1], ['oomKilled', 0], ['error', 0], ['startedAt', 0], ['finishedAt', 0], ['paused', 0],
];
const SPEC: [string, Kind][] = [
  ['name', 0], ['image', 1], ['imageDigest', 1], ['layers', 2], ['args', 2], ['env', 2], ['hostname', 0], ['workdir', 1], ['network', 1], ['autoRemove', 0],
];
const C_SLOTS = new Set(CONTAINER.map(([k]) => k));
const S_SLOTS = new Set(SPEC.map(([k]) => k));
const SPEC_AT = CONTAINER.findIndex(([k]) => k === 'spec');

/** A frame's string table, made while its containers are encoded. */
class Table {
  readonly list: string[] = [];
  private at = new Map<string, number>();
  ref(s: string): number {
    let i = this.at.get(s);
    if (i === undefined) { i = this.list.length; this.list.push(s); this.at.set(s, i); }
    return i;
  }
}

function isStrings(v: unknown): v is string[] {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') return false;
  return true;
}

function tuple(o: Record<string, unknown>, slots: [string, Kind][], names: Set<string>, t: Table, spec: boolean): unknown[] {
  const out: unknown[] = new Array(slots.length + 1).fill(null);
  let rest: Record<string, unknown> | undefined;
  let end = 0;
  for (let i = 0; i < slots.length; i++) {
    const [k, kind] = slots[i]!;
    const v = o[k];
    if (v === undefined) continue;
    let x: unknown;
    if (spec && i === SPEC_AT && v !== null && typeof v === 'object' && !Array.isArray(v)) x = tuple(v as Record<string, unknown>, SPEC, S_SLOTS, t, false);
    else if (spec && i === SPEC_AT) x = undefined;
    else if (kind === 0) x = v === null ? undefined : v;
    else if (kind === 1) x = typeof v === 'string' ? t.ref(v) : undefined;
    else x = isStrings(v) ? v.map((s) => t.ref(s)) : undefined;
    if (x === undefined) { (rest ??= {})[k] = v; continue; }
    out[i] = x; end = i + 1;
  }
  for (const k of Object.keys(o)) if (!names.has(k) && o[k] !== undefined) (rest ??= {})[k] = o[k];
  if (rest) { out[slots.length] = rest; end = slots.length + 1; }
  out.length = end;
  return out;
}

/** Entry `i` of a frame's table; anything else is a broken snapshot. */
function str(table: string[], i: unknown): string {
  if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= table.length) throw new SnapshotError(`string #${String(i)} is not in the frame's table`);
  return table[i]!;
}

function untuple(a: unknown, slots: [string, Kind][], table: string[], spec: boolean): Record<string, unknown> {
  if (!Array.isArray(a) || a.length > slots.length + 1) throw new SnapshotError('a container is not a tuple');
  const o: Record<string, unknown> = {};
  for (let i = 0; i < a.length && i < slots.length; i++) {
    const v = a[i];
    if (v === null || v === undefined) continue;
    const slot = slots[i]!, k = slot[0], kind = slot[1];
    if (spec && i === SPEC_AT) o[k] = untuple(v, SPEC, table, false);
    else if (kind === 0) o[k] = v;
    else if (kind === 1) o[k] = str(table, v);
    else {
      if (!Array.isArray(v)) throw new SnapshotError(`${k} is not a list`);
      const l = new Array<string>(v.length);
      for (let j = 0; j < v.length; j++) l[j] = str(table, v[j]);
      o[k] = l;
    }
  }
  const rest = a[slots.length];
  if (rest !== undefined && rest !== null) {
    if (typeof rest !== 'object' || Array.isArray(rest)) throw new SnapshotError('a container\'s other fields are not a map');
    for (const [k, v] of Object.entries(rest)) if (k !== '__proto__') o[k] = v;
  }
  return o;
}

/**
 * Containers as a version 2 frame's `k` and `t`, as trees for @msgpack/msgpack's encoder: the
 * reference for containerFrame(), which writes the same bytes straight (the tests hold them equal).
 */
export function compact(cs: ContainerView[]): { t: string[]; k: unknown[][] } {
  const t = new Table();
  const k = cs.map((c) => tuple(c as unknown as Record<string, unknown>, CONTAINER, C_SLOTS, t, true));
  // the table first: a reader then makes each container as it meets it (fastFrame), with no pass to step over them
  return { t: t.list, k };
}

// Scratch for containerFrame: the tuples (written before the table they refer to), then the frame.
const tuples = new Writer(), out = new Writer();
/** Past this a scratch buffer is let go after the frame (an end-of-catch-up delta can be most of the view). */
const SCRATCH_KEEP = 4 << 20;

/** Whether a slot of `kind` holds `v` in the tuple (else it goes in the tuple's map of other fields): tuple()'s rule. */
function fits(v: unknown, kind: Kind, spec: boolean): boolean {
  if (v === undefined || v === null) return false;
  if (spec) return typeof v === 'object' && !Array.isArray(v);
  return kind === 0 || (kind === 1 ? typeof v === 'string' : isStrings(v));
}

// each level's field values, read once (a container's, its spec's)
const scratch = [new Array<unknown>(CONTAINER.length), new Array<unknown>(SPEC.length)];

/** tuple(o, ...) written to `w`: the same items, the other fields' map the same, table refs taken in the same order. */
function writeTuple(w: Writer, o: Record<string, unknown>, slots: [string, Kind][], names: Set<string>, t: Table, spec: boolean): void {
  const vals = scratch[spec ? 0 : 1]!;
  let end = 0, rest = 0;
  for (let i = 0; i < slots.length; i++) {
    const v = vals[i] = o[slots[i]![0]];
    if (v === undefined) continue;
    if (fits(v, slots[i]![1], spec && i === SPEC_AT)) end = i + 1; else rest += 1;
  }
  let other: string[] | undefined;
  // its own keys in for-in's order (Object.keys: the same list, inherited ones aside); the value
  // read only for a key the slots do not name, not a keyed load and an own-check per field
  const keys = Object.keys(o);
  for (let i = 0; i < keys.length; i++) { const k = keys[i]!; if (!names.has(k) && o[k] !== undefined) (other ??= []).push(k); }
  if (other) {
    // an index-like key goes first in tuple()'s map, a __proto__ is no key of it: that map made as it makes it
    if (other.some((k) => k === '__proto__' || /^(?:0|[1-9][0-9]*)$/.test(k))) { w.raw(encoder.encode(tuple(o, slots, names, t, spec))); return; }
    rest += other.length;
  }
  w.arrayHeader(rest ? slots.length + 1 : end);
  for (let i = 0; i < end; i++) {
    const v = vals[i];
    if (v === undefined || v === null || !fits(v, slots[i]![1], spec && i === SPEC_AT)) { w.nil(); continue; }
    const kind = slots[i]![1];
    if (spec && i === SPEC_AT) writeTuple(w, v as Record<string, unknown>, SPEC, S_SLOTS, t, false);
    else if (kind === 0) w.value(v);
    else if (kind === 1) w.number(t.ref(v as string));
    else {
      const l = v as string[];
      w.arrayHeader(l.length);
      for (let j = 0; j < l.length; j++) w.number(t.ref(l[j]!));
    }
  }
  if (!rest) return;
  for (let i = end; i < slots.length; i++) w.nil();
  // the fields the slots did not take, in tuple()'s order: the slots' own first, then the others
  w.mapHeader(rest);
  for (let i = 0; i < slots.length; i++) {
    const v = vals[i];
    if (v !== undefined && !fits(v, slots[i]![1], spec && i === SPEC_AT)) { w.string(slots[i]![0]); w.value(v); }
  }
  for (const k of other ?? []) { w.string(k); w.value(o[k]); }
}

/**
 * A frame of containers, written straight: `head`'s fields, then `t` and `k` (compact(cs)), then
 * `tail`'s, each undefined field left out. The same bytes as frame({ ...head, ...compact(cs), ...tail }).
 */
function containerFrame(head: Frame, cs: ContainerView[], tail: Frame): Uint8Array {
  const t = new Table();
  tuples.reset();
  for (const c of cs) writeTuple(tuples, c as unknown as Record<string, unknown>, CONTAINER, C_SLOTS, t, true);
  const defined = (f: Frame) => Object.keys(f).filter((k) => (f as Record<string, unknown>)[k] !== undefined);
  const h = defined(head), tl = defined(tail);
  out.reset();
  out.need(4);
  out.pos = 4;
  out.mapHeader(h.length + 2 + tl.length);
  const field = (f: Frame, k: string) => { out.string(k); out.value((f as Record<string, unknown>)[k]); };
  for (const k of h) field(head, k);
  out.string('t');
  out.arrayHeader(t.list.length);
  for (const s of t.list) out.string(s);
  out.string('k');
  out.arrayHeader(cs.length);
  out.raw(tuples.buf.subarray(0, tuples.pos));
  for (const k of tl) field(tail, k);
  new DataView(out.buf.buffer).setUint32(0, out.pos - 4);
  const bytes = out.bytes();
  tuples.release(SCRATCH_KEEP); out.release(SCRATCH_KEEP);
  return bytes;
}

/** A frame's containers, whichever way they were written. */
function containersOf(f: Frame): ContainerView[] {
  const out = f.c ?? [];
  if (!f.k) return out;
  if (!Array.isArray(f.k) || (f.t !== undefined && !Array.isArray(f.t))) throw new SnapshotError('a frame\'s containers are not a list');
  const table = f.t ?? [];
  for (const a of f.k) {
    const c = untuple(a, CONTAINER, table, true) as unknown as ContainerView;
    if (typeof c.id !== 'string') throw new SnapshotError('a container without an id');
    out.push(c);
  }
  return out;
}

/** Not what the fast frame reader expects: the frame is read the generic way. */
const SLOW = new Error('not a plain version 2 frame');

/**
 * A version 2 frame read straight from its bytes (shared/msgpack.ts's cursor): each container
 * made at once from its tuple, no intermediate arrays, strings by the native UTF-8 slice. Most
 * of view --at's time with a large snapshot was the generic decode and untuple. The table `t`
 * is written after `k`, so `k` is stepped over first and read second. Throws SLOW for anything
 * it does not expect (the generic decode then reads the frame, with its own checks and errors).
 */
function fastFrame(r: Reader, body: Uint8Array): Frame {
  r.reset(body);
  const n = r.mapLen();
  if (isNot(n)) throw SLOW;
  const f: Frame = {};
  let kAt = -1;
  let table: string[] | undefined;
  for (let i = 0; i < n; i++) {
    const key = r.key();
    // a key given twice: the generic decode's reading (its last value) decides
    if ((key === 'k' && (kAt >= 0 || f.c)) || (key === 't' && table)) throw SLOW;
    if (key === 'k') {
      // written before the table (older snapshots): stepped over now, read once the table is
      if (table === undefined) { kAt = r.pos; r.skip(); } else f.c = fastContainers(r, table);
      continue;
    }
    if (key === 't') {
      const m = r.arrayLen();
      if (isNot(m)) throw SLOW;
      table = new Array<string>(m);
      for (let j = 0; j < m; j++) { const x = r.str(); if (isNot(x)) throw SLOW; table[j] = x; }
      continue;
    }
    if (key === 'c') throw SLOW;
    (f as Record<string, unknown>)[key] = r.value();
  }
  if (kAt < 0) return f;
  r.at(kAt);
  f.c = fastContainers(r, table ?? []);
  return f;
}

/** A frame's `k` at the cursor, each container made from its tuple. */
function fastContainers(r: Reader, t: string[]): ContainerView[] {
  const m = r.arrayLen();
  if (isNot(m)) throw SLOW;
  const c = new Array<ContainerView>(m);
  for (let j = 0; j < m; j++) {
    const x = fastTuple(r, CONTAINER, t, true);
    if (typeof x.id !== 'string') throw SLOW;
    c[j] = x as unknown as ContainerView;
  }
  return c;
}

/**
 * A maker of an object literal with `slots`' keys of one presence mask, in slot order, values by
 * slot index: a container made whole from one boilerplate (one allocation, one hidden class,
 * pretenured by its allocation site once V8 sees they live) instead of a key stored at a time
 * through a keyed store that sees every slot's name. The code is made from the slot names (this
 * file's constants), never from a snapshot's bytes; the same keys in the same order as untuple.
 */
type Maker = (v: unknown[]) => Record<string, unknown>;
/** Mixes of fields given a maker of their own (a view has a few dozen; past this, odd ones are made a key at a time). */
const MAKERS_MAX = 256;
const makers = new Map<[string, Kind][], Map<number, Maker>>();
function makerOf(slots: [string, Kind][], mask: number): Maker {
  let m = makers.get(slots);
  if (!m) makers.set(slots, (m = new Map()));
  let f = m.get(mask);
  if (!f && m.size >= MAKERS_MAX) return (v) => { const o: Record<string, unknown> = {}; for (let i = 0; i < slots.length; i++) if (mask & (1 << i)) o[slots[i]![0]] = v[i]; return o; };
  if (!f) {
    const fields = slots.flatMap(([k], i) => (mask & (1 << i) ? [`${JSON.stringify(k)}: v[${i}]`] : []));
    m.set(mask, (f = new Function('v', `return { ${fields.join(', ')} };`) as Maker));
  }
  return f;
}
// each level's slot values as read (a container's, its spec's), before its object is made
const readVals = new Map<[string, Kind][], unknown[]>([[CONTAINER, new Array<unknown>(CONTAINER.length)], [SPEC, new Array<unknown>(SPEC.length)]]);

/** untuple's result, read from the bytes (SLOW for what untuple would refuse or treat otherwise). */
function fastTuple(r: Reader, slots: [string, Kind][], table: string[], spec: boolean): Record<string, unknown> {
  const n = r.arrayLen();
  if (isNot(n) || n > slots.length + 1) throw SLOW;
  const vals = readVals.get(slots)!;
  let mask = 0;
  let rest: unknown;
  for (let i = 0; i < n; i++) {
    if (r.nil()) continue;
    if (i === slots.length) {
      rest = r.value();
      if (typeof rest !== 'object' || rest === null || Array.isArray(rest) || rest instanceof Uint8Array) throw SLOW;
      continue;
    }
    const kind = slots[i]![1];
    let v: unknown;
    if (spec && i === SPEC_AT) v = fastTuple(r, SPEC, table, false);
    else if (kind === 0) {
      // an extension is nothing a view holds (the generic decoder makes it otherwise)
      const b = r.buf[r.pos]!;
      if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) throw SLOW;
      v = r.value();
    } else if (kind === 1) v = at(table, r.num());
    else {
      const m = r.arrayLen();
      if (isNot(m)) throw SLOW;
      const l = new Array<string>(m);
      for (let j = 0; j < m; j++) l[j] = at(table, r.num());
      v = l;
    }
    vals[i] = v;
    mask |= 1 << i;
  }
  const o = makerOf(slots, mask)(vals);
  vals.fill(undefined);
  if (rest !== undefined) for (const k in rest as Record<string, unknown>) o[k] = (rest as Record<string, unknown>)[k];
  return o;
}

const at = (table: string[], i: number | symbol): string => {
  if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= table.length) throw SLOW;
  return table[i]!;
};

/** The frames of `buf` in order; a torn tail (a crash mid-append) ends the list, it is not an error. */
export function* frames(buf: Uint8Array): Generator<Frame> {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let decoder: Decoder | undefined;
  const reader = new Reader();
  for (let at = 0; at + 4 <= buf.length;) {
    const len = dv.getUint32(at);
    if (at + 4 + len > buf.length) return;
    let f: unknown;
    const body = buf.subarray(at + 4, at + 4 + len);
    try { f = fastFrame(reader, body); } catch (err) {
      if (err !== SLOW && !(err instanceof WireError)) throw err;
      f = undefined;
    }
    if (f === undefined) {
      try { f = (decoder ??= new Decoder()).decode(body); } catch (err) { throw new SnapshotError(`frame at byte ${at}: ${(err as Error).message}`); }
    }
    if (typeof f !== 'object' || f === null || Array.isArray(f)) throw new SnapshotError(`frame at byte ${at} is not a map`);
    yield f as Frame;
    at += 4 + len;
  }
}

/**
 * A full snapshot of `view`, made a step at a time. The caller folds between steps; the
 * index's change tracker says which containers to write again in the last frame.
 */
export class SnapshotWriter {
  private tracker: ChangeTracker = { containers: new Set(), nodes: new Set() };
  private ids: string[];
  private at = 0;
  private parts: Uint8Array[] = [];
  private bytes = 0;

  constructor(private view: ClusterView) {
    this.ids = Object.keys(view.containers);
    indexOf(view).trackers.add(this.tracker);
  }

  /** Encodes the next chunk; true once every container is. */
  step(): boolean {
    const chunk: ContainerView[] = [];
    for (const end = Math.min(this.at + CHUNK, this.ids.length); this.at < end; this.at++) {
      const id = this.ids[this.at]!;
      // a container changed since the start is written by the last frame
      if (!this.tracker.containers.has(id) && Object.hasOwn(this.view.containers, id)) chunk.push(this.view.containers[id]!);
    }
    if (chunk.length) this.push(containerFrame({}, chunk, {}));
    return this.at >= this.ids.length;
  }

  /** The last frame (the view as of now), and the whole snapshot's bytes. */
  finish(): { seq: number; bytes: Uint8Array } {
    while (!this.step()) { /* whatever is left, now */ }
    this.cancel();
    const c: ContainerView[] = [], d: string[] = [];
    for (const id of this.tracker.containers) {
      if (Object.hasOwn(this.view.containers, id)) c.push(this.view.containers[id]!); else d.push(id);
    }
    this.push(containerFrame({ v: SNAPSHOT_VERSION }, c, { d, meta: meta(this.view), nodes: this.view.nodes, count: indexOf(this.view).size }));
    const out = new Uint8Array(this.bytes);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return { seq: this.view.seq, bytes: out };
  }

  /** Stops tracking changes (finish does it too). */
  cancel(): void { indexOf(this.view).trackers.delete(this.tracker); }

  private push(b: Uint8Array): void { this.parts.push(b); this.bytes += b.length; }
}

/** The view a full snapshot holds; SnapshotError if it is incomplete or not one. */
export function readSnapshot(buf: Uint8Array): ClusterView {
  const containers: Record<string, ContainerView> = {};
  let last: Frame | undefined;
  let count = 0; // counted as they go in (Object.keys of 100,000 ids is an array of them)
  for (const f of frames(buf)) {
    if (last) throw new SnapshotError('frames after the last one');
    // a chunk's containers are new to the view (SnapshotWriter writes each id once before the last
    // frame): stored without a look first, counted all the same; one given twice leaves the count
    // above the last frame's, so the snapshot is refused. The last frame's may be written again.
    if (f.meta) for (const c of containersOf(f)) { if (!Object.hasOwn(containers, c.id)) count += 1; containers[c.id] = c; }
    else for (const c of containersOf(f)) { containers[c.id] = c; count += 1; }
    if (f.meta) last = f;
  }
  if (!last || !READS.has(last.v as number)) throw new SnapshotError(last ? `snapshot version ${JSON.stringify(last.v)}, this build reads ${SNAPSHOT_VERSION}` : 'incomplete snapshot (no last frame)');
  for (const id of last.d ?? []) if (Object.hasOwn(containers, id)) { delete containers[id]; count -= 1; }
  const view: ClusterView = { ...emptyView(), ...last.meta!, containers, nodes: last.nodes ?? {} };
  if (count !== last.count) throw new SnapshotError(`snapshot holds ${count} containers, its last frame says ${last.count}`);
  return view;
}

/**
 * Where the view of a snapshot (and a journal after it) stands, without reading its containers:
 * the sequence and the signing keys, from the snapshot's last frame and the last journal frame
 * that follows it (the frames are stepped over by their lengths). For a reader started before the
 * view is loaded; the loaded view has the last word (undefined: no snapshot, or not one).
 */
export function peekSnapshot(snap: Uint8Array, journal?: Uint8Array): { seq: number; keys: Record<string, string> } | undefined {
  const lastOf = (buf: Uint8Array, fits: (f: Frame) => boolean): Frame | undefined => {
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const at: number[] = [];
    for (let o = 0; o + 4 <= buf.length;) {
      const len = dv.getUint32(o);
      if (o + 4 + len > buf.length) break;
      at.push(o); o += 4 + len;
    }
    for (let i = at.length - 1; i >= 0; i--) {
      const f = new Decoder().decode(buf.subarray(at[i]! + 4, at[i]! + 4 + dv.getUint32(at[i]!))) as Frame;
      if (typeof f === 'object' && f !== null && fits(f)) return f;
    }
    return undefined;
  };
  try {
    const last = lastOf(snap, () => true);
    const seq = last?.meta?.seq;
    if (!last || typeof seq !== 'number') return undefined;
    const d = journal ? lastOf(journal, (f) => f.base === seq && typeof f.seq === 'number' && typeof f.meta === 'object') : undefined;
    const m = d && (d.seq as number) > seq ? { seq: d.seq as number, keys: d.meta?.keys } : { seq, keys: last.meta?.keys };
    return { seq: m.seq, keys: { ...(m.keys ?? {}) } };
  } catch { return undefined; }
}

/** A delta frame: what changed since the tracker was last emptied (it is emptied). */
export function encodeDelta(view: ClusterView, tracker: ChangeTracker, base: number): Uint8Array {
  const c: ContainerView[] = [], d: string[] = [];
  for (const id of tracker.containers) {
    if (Object.hasOwn(view.containers, id)) c.push(view.containers[id]!); else d.push(id);
  }
  const bytes = containerFrame({ base, seq: view.seq }, c, { d, meta: meta(view), ...(tracker.nodes.size ? { nodes: view.nodes } : {}) });
  tracker.containers.clear(); tracker.nodes.clear();
  return bytes;
}

/** Applies a journal's frames that follow the snapshot at `base`, in order; returns how many. */
export function applyJournal(view: ClusterView, buf: Uint8Array, base: number): number {
  let n = 0;
  for (const f of frames(buf)) {
    if (f.base !== base || f.seq === undefined || f.seq <= view.seq) continue;
    for (const c of containersOf(f)) { view.containers[c.id] = c; }
    for (const id of f.d ?? []) delete view.containers[id];
    Object.assign(view, f.meta, { seq: f.seq });
    if (f.nodes) view.nodes = f.nodes;
    n += 1;
  }
  return n;
}

/**
 * The container whose tuple starts at `pos` of a version 2 frame's bytes (`table` that frame's
 * strings), made as readSnapshot makes it: the fast reader, else the generic decode and untuple.
 * For shared/snapshot-lazy.ts, which makes a container only when it is used. SnapshotError if
 * it is not a container.
 */
export function containerAt(r: Reader, body: Uint8Array, pos: number, table: string[]): ContainerView {
  r.reset(body).at(pos);
  try {
    const x = fastTuple(r, CONTAINER, table, true);
    if (typeof x.id === 'string') return x as unknown as ContainerView;
  } catch (err) { if (err !== SLOW && !(err instanceof WireError)) throw err; }
  let end: number;
  try { r.at(pos).skip(); end = r.pos; } catch (err) { throw new SnapshotError(`a container at byte ${pos}: ${(err as Error).message}`); }
  let a: unknown;
  try { a = new Decoder().decode(body.subarray(pos, end)); } catch (err) { throw new SnapshotError(`a container at byte ${pos}: ${(err as Error).message}`); }
  const c = untuple(a, CONTAINER, table, true) as unknown as ContainerView;
  if (typeof c.id !== 'string') throw new SnapshotError('a container without an id');
  return c;
}
