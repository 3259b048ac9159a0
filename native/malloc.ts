// Memory given back after a long replay: a full garbage collection, then glibc's malloc_trim on a
// libuv worker thread. Node's ArrayBuffers (the reader thread's posts, snapshot bytes, the thread's
// own heap) come from malloc and are freed only when V8 collects them; once freed, glibc keeps most
// of them mapped (only the top of the heap is returned). After the 1M replay the controller held
// 80-95 MB of such buffers at ready, most of them garbage.
import koffi from './koffi.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let trim: { async: (pad: number, cb: (err: unknown, rc: number) => void) => void } | null | undefined;
let gc: (() => void) | undefined;

/** A full collection now (the collector made callable in a context of its own: the process's globals get no `gc`). */
export function collectGarbage(): void {
  if (!gc) { setFlagsFromString('--expose-gc'); gc = runInNewContext('gc') as () => void; }
  gc();
}

/**
 * Returns free C heap to the system without blocking the event loop. Resolves whether it could
 * (false: not glibc, or the call failed); it never rejects, the memory is only a cache's worth.
 */
export function trimMalloc(): Promise<boolean> {
  if (trim === undefined) {
    try { trim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)'); } catch { trim = null; }
  }
  const f = trim;
  if (!f) return Promise.resolve(false);
  return new Promise((resolve) => {
    try { f.async(0, (err, rc) => resolve(!err && rc >= 0)); } catch { resolve(false); }
  });
}

/**
 * Buffers held past which a full collection is worth its pause (~0.1 s with a 100k-container view):
 * after the 1M replay 80-95 MB were, after a snapshot and 100k events 20-25 MB.
 */
export const COLLECT_FROM = 32 * 1024 * 1024;

/** collectGarbage (when ArrayBuffers hold `collectFrom` bytes or more), then trimMalloc: what a long replay left behind, given back. */
export function releaseMemory(collectFrom = COLLECT_FROM): Promise<boolean> {
  if (process.memoryUsage().arrayBuffers >= collectFrom) collectGarbage();
  return trimMalloc();
}
