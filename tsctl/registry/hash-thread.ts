// A blob's sha256 computed on a thread of its own while the main thread receives the next
// bytes: hashing the pull bench's 36 MB on the main thread made its receive ~21 ms longer
// (72 against 51 ms for the five blobs read from a socket, hashed or not, side by side).
// A piece in a SharedArrayBuffer (wire.ts reads into such slabs, never writing a byte it
// handed out) goes over as it is; any other is copied first. One worker serves every hash of
// the process, in the order their pieces were given; it holds the process open only while a
// digest is awaited. Without a worker (it could not start) the hash is this thread's; one
// that died fails the digests it owed (the pull is refused, its spool kept for the next).
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

// eval'd: the same in the ESM build and in tsctl's bundles (no file of its own to find).
// The worker's heap barely grows, so it seldom collected: each message's SharedArrayBuffer
// stayed referenced and a warm tsctl grew by a pull's bytes per pull (560 MB after 20); a
// minor GC after each digest frees them (--expose-gc then holds for contexts made later).
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const open = new Map();
let gc;
try { require('v8').setFlagsFromString('--expose-gc'); gc = require('vm').runInNewContext('gc'); } catch {}
parentPort.on('message', (m) => {
  let h = open.get(m[0]);
  if (m.length === 1) {
    open.delete(m[0]);
    parentPort.postMessage([m[0], h ? h.digest('hex') : createHash('sha256').digest('hex')]);
    if (gc) gc({ type: 'minor' });
    return;
  }
  if (m[1] === null) { open.delete(m[0]); return; }
  if (!h) open.set(m[0], h = createHash('sha256'));
  h.update(new Uint8Array(m[1], m[2], m[3]));
});`;

export interface BlobHash {
  update(b: Uint8Array): void;
  /** The hex digest of every byte given. */
  digest(): Promise<string>;
  /** Abandoned before its digest: the worker forgets it. */
  drop(): void;
}

let worker: Worker | undefined;
let broken: Error | undefined;
let nextId = 1;
const waiting = new Map<number, { resolve: (hex: string) => void; reject: (e: Error) => void }>();

function thread(): Worker | undefined {
  if (worker || broken) return worker;
  try {
    const w = new Worker(SOURCE, { eval: true, stdout: false, stderr: false });
    w.unref();
    w.on('message', ([id, hex]: [number, string]) => {
      const p = waiting.get(id);
      waiting.delete(id);
      if (!waiting.size) w.unref();
      p?.resolve(hex);
    });
    const fail = (e: Error) => {
      broken ??= e;
      worker = undefined;
      for (const p of waiting.values()) p.reject(new Error(`the hashing thread failed: ${e.message}`));
      waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`it exited (${code})`)));
    worker = w;
  } catch (e) {
    broken = e as Error;
  }
  return worker;
}

/** Starts the worker now (its start overlaps whatever comes before the first hash). */
export function prestartHashThread(): void { thread(); }

/** A sha256 on the worker, or on this thread when there is none. */
export function blobHash(): BlobHash {
  const w = thread();
  if (!w) return local(createHash('sha256'));
  const id = nextId++;
  let failed: Error | undefined, asked = false;
  return {
    update(b) {
      if (failed) return;
      try {
        if (b.buffer instanceof SharedArrayBuffer) w.postMessage([id, b.buffer, b.byteOffset, b.byteLength]);
        else {
          const copy = new Uint8Array(b.byteLength);
          copy.set(b);
          w.postMessage([id, copy.buffer, 0, copy.byteLength], [copy.buffer]);
        }
      } catch (e) { failed = e as Error; }
    },
    digest() {
      if (failed) return Promise.reject(failed);
      if (worker !== w) return Promise.reject(new Error(`the hashing thread failed: ${broken?.message ?? 'gone'}`));
      asked = true;
      return new Promise<string>((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        w.ref();
        w.postMessage([id]);
      });
    },
    drop() { if (!asked && worker === w) w.postMessage([id, null]); },
  };
}

function local(h: Hash): BlobHash {
  return { update: (b) => { h.update(b); }, digest: () => Promise.resolve(h.digest('hex')), drop: () => undefined };
}
