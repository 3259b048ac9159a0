// Reader of the container log sl-monitor writes (format documented in
// native/src/monitor/monitor.c): frames of
//   [u8 stream 1=stdout 2=stderr][u32 LE length][u64 LE µs since epoch][payload]
// appended in the order the monitor read them, so stdout/stderr interleaving is kept.
import { open } from 'node:fs/promises';

export const FRAME_HEADER = 13;
export const MAX_FRAME_PAYLOAD = 1 << 20; // the monitor reads at most 64 KiB at a time

export type LogStream = 'stdout' | 'stderr';

export interface LogFrame { stream: LogStream; time: number /* ms since epoch, fractional */; data: Buffer }

export class LogFormatError extends Error {
  constructor(readonly offset: number, reason: string) {
    super(`container log corrupt at byte ${offset}: ${reason}`);
    this.name = 'LogFormatError';
  }
}

/**
 * Decodes whole frames from buf; a partial trailing frame is left for the next read.
 * `consumed` is how many bytes the returned frames cover (add it to the file offset).
 * `base` only makes error offsets point into the file.
 */
export function decodeFrames(buf: Buffer, base = 0): { frames: LogFrame[]; consumed: number } {
  const frames: LogFrame[] = [];
  let off = 0;
  while (buf.length - off >= FRAME_HEADER) {
    const s = buf[off];
    if (s !== 1 && s !== 2) throw new LogFormatError(base + off, `stream byte ${s}`);
    const len = buf.readUInt32LE(off + 1);
    if (len > MAX_FRAME_PAYLOAD) throw new LogFormatError(base + off, `frame length ${len}`);
    if (buf.length - off - FRAME_HEADER < len) break;
    const us = buf.readBigUInt64LE(off + 5);
    frames.push({
      stream: s === 1 ? 'stdout' : 'stderr',
      time: Number(us) / 1000,
      data: buf.subarray(off + FRAME_HEADER, off + FRAME_HEADER + len),
    });
    off += FRAME_HEADER + len;
  }
  return { frames, consumed: off };
}

/** Encodes one frame (tests; the monitor writes the real ones). */
export function encodeFrame(stream: LogStream, time: number, data: Buffer): Buffer {
  const h = Buffer.alloc(FRAME_HEADER);
  h[0] = stream === 'stdout' ? 1 : 2;
  h.writeUInt32LE(data.length, 1);
  h.writeBigUInt64LE(BigInt(Math.round(time * 1000)), 5);
  return Buffer.concat([h, data]);
}

/**
 * Reads the frames complete at `offset` onwards. Returns them and the offset to pass next
 * time (it stays before a frame the monitor is still writing). A missing file reads as empty.
 */
export async function readLogFrom(path: string, offset = 0, maxBytes = 4 << 20): Promise<{ frames: LogFrame[]; next: number }> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { frames: [], next: offset };
    throw err;
  }
  try {
    const size = (await fh.stat()).size;
    const want = Math.min(Math.max(0, size - offset), maxBytes);
    if (want === 0) return { frames: [], next: offset };
    const buf = Buffer.alloc(want);
    const { bytesRead } = await fh.read(buf, 0, want, offset);
    const { frames, consumed } = decodeFrames(buf.subarray(0, bytesRead), offset);
    return { frames, next: offset + consumed };
  } finally {
    await fh.close();
  }
}
