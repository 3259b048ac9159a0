// Human output: docker-like columns and durations. Columns are plain padding (a table
// library would add a dependency and ~10 ms of start-up for what padEnd does).
import type { ContainerView } from '../shared/reducer.js';
import { healthSuffix } from '../shared/health.js';

/** What a row of view --at's listing shows of a container. */
export interface ContainerRow { id: string; name: unknown; state: unknown; node: unknown; requestedBy: unknown }

export function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i] + 3))).join('').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function ago(ms: number, now = Date.now()): string {
  return `${human(now - ms)} ago`;
}

export function human(d: number): string {
  const s = Math.max(0, Math.round(d / 1000));
  if (s < 1) return 'Less than a second';
  if (s < 60) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} minute${m === 1 ? '' : 's'}`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} hour${h === 1 ? '' : 's'}`;
  return `${Math.round(h / 24)} days`;
}

export function status(c: ContainerView, now = Date.now()): string {
  switch (c.state) {
    case 'running': return `Up ${human(now - (c.startedAt ?? c.createdAt))}${c.paused ? ' (Paused)' : healthSuffix(c.health?.status)}`;
    case 'exited': if (c.restarting) return `Restarting (${c.exitCode ?? -1}) ${ago(c.finishedAt ?? c.createdAt, now)}`;
      return `Exited (${c.exitCode ?? -1})${c.oomKilled ? ' OOMKilled' : ''} ${ago(c.finishedAt ?? c.createdAt, now)}`;
    case 'failed': return `Failed (${c.exitCode ?? 125}): ${(c.error ?? '').slice(0, 40)}`;
    case 'removing': return 'Removal In Progress';
    case 'rejected': return `Rejected: ${(c.error ?? '').slice(0, 60)}`;
    // why it has not started, when the log says (its node went down first)
    default: return c.error ? `Created: ${c.error.slice(0, 60)}` : 'Created';
  }
}

export function command(args: string[]): string {
  const s = JSON.stringify(args.join(' '));
  return s.length > 22 ? `${s.slice(0, 20)}…"` : s;
}

export function bytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 2).replace(/\.00$/, '')}${u[i]}`;
}

/**
 * view --at's container rows (`  ID12 NAME STATE NODE by USER`, padded as padEnd pads: in UTF-16
 * units) written straight into one buffer: a string per row joined at the end cost twice the
 * time with 100,000 containers, and this is one write. Short ASCII strings (nearly all of them)
 * are copied a char at a time: Buffer's write() costs more per call than such a string's bytes.
 */
/** Rows given one call each, their fields as arguments (no object per row): a lazily read snapshot's (shared/snapshot-lazy.ts). */
export interface RowSource { eachRow(f: (id: string, name: unknown, state: unknown, node: unknown, requestedBy: unknown) => void): void }

export function containerRows(cs: Record<string, ContainerView> | Iterable<ContainerRow> | RowSource): { rows: Buffer; count: number } {
  let buf = Buffer.allocUnsafe(1 << 20);
  let o = 0, count = 0;
  const put = (s: string) => {
    const n = s.length;
    if (n <= 32) {
      let i = 0;
      for (; i < n; i++) { const c = s.charCodeAt(i); if (c >= 0x80) break; buf[o + i] = c; }
      if (i === n) { o += n; return; }
    }
    o += buf.write(s, o);
  };
  const pad = (n: number) => { for (; n > 0; n--) buf[o++] = 32; };
  const row = (id: string, n: unknown, st: unknown, nd: unknown, rb: unknown) => {
    count += 1;
    const name = String(n), state = String(st), node = String(nd), by = String(rb);
    // at most 3 bytes of UTF-8 per UTF-16 unit, and the padding and separators
    const need = 3 * (12 + name.length + state.length + node.length + by.length) + 64;
    if (buf.length - o < need) { const b = Buffer.allocUnsafe(Math.max(buf.length * 2, o + need)); buf.copy(b, 0, 0, o); buf = b; }
    buf[o++] = 32; buf[o++] = 32;
    put(id.length > 12 ? id.slice(0, 12) : id); buf[o++] = 32;
    put(name); pad(20 - name.length); buf[o++] = 32;
    put(state); pad(9 - state.length); buf[o++] = 32;
    put(node); buf[o++] = 32; buf[o++] = 98; buf[o++] = 121; buf[o++] = 32; // ' by '
    put(by); buf[o++] = 10;
  };
  // an iterable: the rows of a lazily read snapshot (shared/snapshot-lazy.ts), each as the container would give it
  const each = (x: ContainerRow) => row(x.id, x.name, x.state, x.node, x.requestedBy);
  if (typeof (cs as RowSource).eachRow === 'function' && !Object.hasOwn(cs, 'eachRow')) (cs as RowSource).eachRow(row);
  else if (Symbol.iterator in cs) for (const x of cs as Iterable<ContainerRow>) each(x);
  else for (const id in cs) each((cs as Record<string, ContainerView>)[id]!);
  return { rows: buf.subarray(0, o), count };
}
