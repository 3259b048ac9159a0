// The view's snapshots in binary: msgpack frames `[u32 length][msgpack]`, pure (no I/O).
// A full snapshot is made a chunk of containers at a time, so folding goes on between chunks:
// a chunk holds the containers as they were when it was encoded, and the last frame holds
// everything but the containers as of its own sequence plus every container that changed
// (or left) since the first chunk, so the whole equals the view at that sequence.
// A delta frame holds what changed since the one before (the controller's journal): it names
// the full snapshot it follows (`base`), so a journal left from an older snapshot is ignored.
import { Decoder, Encoder } from '@msgpack/msgpack';
import { emptyView, indexOf, type ChangeTracker, type ClusterView, type ContainerView } from './reducer.js';

export const SNAPSHOT_VERSION = 1;
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
  /** the last frame of a full snapshot: everything else, and the number of containers */
  meta?: Meta; nodes?: ClusterView['nodes']; count?: number;
  /** a delta: the full snapshot it follows and the sequence it brings the view to */
  base?: number; seq?: number;
}

const encoder = new Encoder({ ignoreUndefined: true });

function frame(f: Frame): Uint8Array {
  const body = encoder.encode(f);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

function meta(view: ClusterView): Meta {
  const { containers: _c, nodes: _n, ...rest } = view;
  return rest;
}

/** The frames of `buf` in order; a torn tail (a crash mid-append) ends the list, it is not an error. */
export function* frames(buf: Uint8Array): Generator<Frame> {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const decoder = new Decoder();
  for (let at = 0; at + 4 <= buf.length;) {
    const len = dv.getUint32(at);
    if (at + 4 + len > buf.length) return;
    let f: unknown;
    try { f = decoder.decode(buf.subarray(at + 4, at + 4 + len)); } catch (err) { throw new SnapshotError(`frame at byte ${at}: ${(err as Error).message}`); }
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
    if (chunk.length) this.push(frame({ c: chunk }));
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
    this.push(frame({ v: SNAPSHOT_VERSION, c, d, meta: meta(this.view), nodes: this.view.nodes, count: indexOf(this.view).size }));
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
  for (const f of frames(buf)) {
    if (last) throw new SnapshotError('frames after the last one');
    for (const c of f.c ?? []) containers[c.id] = c;
    if (f.meta) last = f;
  }
  if (!last || last.v !== SNAPSHOT_VERSION) throw new SnapshotError(last ? `snapshot version ${JSON.stringify(last.v)}, this build reads ${SNAPSHOT_VERSION}` : 'incomplete snapshot (no last frame)');
  for (const id of last.d ?? []) delete containers[id];
  const view: ClusterView = { ...emptyView(), ...last.meta!, containers, nodes: last.nodes ?? {} };
  if (Object.keys(containers).length !== last.count) throw new SnapshotError(`snapshot holds ${Object.keys(containers).length} containers, its last frame says ${last.count}`);
  return view;
}

/** A delta frame: what changed since the tracker was last emptied (it is emptied). */
export function encodeDelta(view: ClusterView, tracker: ChangeTracker, base: number): Uint8Array {
  const c: ContainerView[] = [], d: string[] = [];
  for (const id of tracker.containers) {
    if (Object.hasOwn(view.containers, id)) c.push(view.containers[id]!); else d.push(id);
  }
  const f: Frame = { base, seq: view.seq, c, d, meta: meta(view), ...(tracker.nodes.size ? { nodes: view.nodes } : {}) };
  tracker.containers.clear(); tracker.nodes.clear();
  return frame(f);
}

/** Applies a journal's frames that follow the snapshot at `base`, in order; returns how many. */
export function applyJournal(view: ClusterView, buf: Uint8Array, base: number): number {
  let n = 0;
  for (const f of frames(buf)) {
    if (f.base !== base || f.seq === undefined || f.seq <= view.seq) continue;
    for (const c of f.c ?? []) view.containers[c.id] = c;
    for (const id of f.d ?? []) delete view.containers[id];
    Object.assign(view, f.meta, { seq: f.seq });
    if (f.nodes) view.nodes = f.nodes;
    n += 1;
  }
  return n;
}
