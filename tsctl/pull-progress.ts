// A pull's progress as docker shows it: one line per layer ("3f4a5b6c7d8e: Downloading
// 12.3MB/40MB"), redrawn in place on a terminal at most every 100 ms; on anything else
// (a pipe, a log) one plain line per layer when it is done, nothing per chunk. Hand-written:
// ~60 lines, where a progress-bar package would bring its own rendering model and
// dependencies for less than this needs (several bars that finish in any order).
// The formatting is pure (unit-tested); the writer is the thin part.

export type LayerState = { id: string; total: number; got: number; status: 'Waiting' | 'Downloading' | 'Resuming' | 'Pull complete' | 'Already exists' | 'Failed' };

/** docker's units: 1000-based, one decimal under 10 GB. */
export function size(n: number): string {
  if (n < 1e3) return `${n}B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)}kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)}MB`;
  return `${(n / 1e9).toFixed(2)}GB`;
}

/** One layer's line. */
export function line(l: LayerState): string {
  const head = `${l.id}: ${l.status}`;
  return l.status === 'Downloading' || l.status === 'Resuming' ? `${head} ${size(l.got)}/${size(l.total)}` : head;
}

export interface Progress {
  layer(digest: string, total: number): void;
  /** `got` is the blob's bytes so far (a resumed one starts above 0). */
  bytes(digest: string, got: number, status?: 'Downloading' | 'Resuming'): void;
  done(digest: string, status: 'Pull complete' | 'Already exists' | 'Failed'): void;
  end(): void;
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

/** Lines redrawn in place (cursor up, clear line) on a terminal. */
export function terminalProgress(write: (s: string) => void, now: () => number = Date.now): Progress {
  const layers = new Map<string, LayerState>();
  let drawn = 0, last = 0;
  const draw = (force = false) => {
    if (!force && now() - last < 100) return;
    last = now();
    const lines = [...layers.values()].map(line);
    write(`${drawn ? `\x1b[${drawn}A` : ''}${lines.map((l) => `\x1b[2K${l}\n`).join('')}`);
    drawn = lines.length;
  };
  return {
    layer(d, total) { layers.set(d, { id: short(d), total, got: 0, status: 'Waiting' }); draw(true); },
    bytes(d, got, status = 'Downloading') { const l = layers.get(d); if (l) { l.got = got; l.status = status; draw(); } },
    done(d, status) { const l = layers.get(d); if (l) { l.status = status; draw(true); } },
    end() { if (layers.size) draw(true); },
  };
}

/** One plain line per layer when it is done. */
export function plainProgress(write: (s: string) => void): Progress {
  return {
    layer() { /* nothing until it is done */ },
    bytes() { /* nothing per chunk */ },
    // a failure is the error's one line, not a layer's
    done(d, status) { if (status !== 'Failed') write(`${short(d)}: ${status}\n`); },
    end() { /* nothing */ },
  };
}
