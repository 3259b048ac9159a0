// glibc's malloc_trim, on a libuv worker thread: gives the C heap's free pages back to the system.
// Node's ArrayBuffers (the reader thread's posts, snapshot bytes, the thread's own heap) come from
// malloc; once freed, glibc keeps most of them mapped (only the top of the heap is returned), so a
// controller after a long replay held tens of MB of free C heap in its RSS.
import koffi from 'koffi';

let trim: { async: (pad: number, cb: (err: unknown, rc: number) => void) => void } | null | undefined;

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
