// Compares the servers' copies of the log in a fleet kept by fleet-loss (FLEET_LOSS_TRACE=DIR
// FLEET_LOSS_KEEP_STORE=1): each server's EVENTS store read from its files (nats-server 2.9's
// filestore blocks), not through a server. Not a test: it prints, per server, the events that
// another server's copy holds and this one lacks, the ids it holds twice, and the first position
// where the copies hold different events.
//   node dist/test/bench/store-diff.js DIR/<prefix> [stream=EVENTS]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Stored { seq: number; subject: string; id: string; ts: number }

/**
 * One stream's messages from its msgs/<n>.blk files. A record: u32 length (top bit: it has
 * headers), u64 sequence (top bit: erased), i64 timestamp, u16 subject length, subject,
 * [u32 header length, headers], payload, 8-byte hash. Pure but for the reads.
 */
export function readStore(dir: string): Map<number, Stored> {
  const out = new Map<number, Stored>();
  const blocks = readdirSync(join(dir, 'msgs')).filter((f) => /^\d+\.blk$/.test(f)).sort((a, b) => parseInt(a) - parseInt(b));
  for (const f of blocks) {
    const b = readFileSync(join(dir, 'msgs', f));
    for (let i = 0; i + 22 <= b.length;) {
      const raw = b.readUInt32LE(i);
      const len = raw & 0x7fffffff;
      if (len < 22 || i + len > b.length) break;
      const seqRaw = b.readBigUInt64LE(i + 4);
      const seq = Number(seqRaw & 0x7fffffffffffffffn);
      const ts = Number(b.readBigInt64LE(i + 12) / 1_000_000n);
      const sl = b.readUInt16LE(i + 20);
      const subject = b.toString('utf8', i + 22, i + 22 + sl);
      let id = '';
      if (raw & 0x80000000) {
        const hl = b.readUInt32LE(i + 22 + sl);
        const h = b.toString('latin1', i + 26 + sl, i + 26 + sl + hl);
        id = /Nats-Msg-Id:\s*(\S+)/.exec(h)?.[1] ?? '';
      }
      if (seq > 0 && !(seqRaw >> 63n)) out.set(seq, { seq, subject, id, ts });
      i += len;
    }
  }
  return out;
}

function main(): void {
  const [fleet, stream = 'EVENTS'] = process.argv.slice(2);
  if (!fleet) { console.error('usage: store-diff FLEETDIR [stream]'); process.exit(2); }
  const hosts = readdirSync(fleet).filter((h) => /^h\d+$/.test(h)).sort();
  const copies = new Map(hosts.map((h) => [h, readStore(join(fleet, h, 'nats', 'jetstream', '$G', 'streams', stream))]));
  const ids = new Map([...copies].map(([h, c]) => [h, new Map([...c.values()].map((m) => [m.id, m.seq]))]));
  for (const [h, c] of copies) {
    const seqs = [...c.keys()];
    const lacks: string[] = [];
    for (const [g, other] of ids) {
      if (g === h) continue;
      for (const [id, seq] of other) if (id && !ids.get(h)!.has(id) && !lacks.some((l) => l.startsWith(id))) lacks.push(`${id} (#${seq} on ${g}, ${copies.get(g)!.get(seq)!.subject}, ${new Date(copies.get(g)!.get(seq)!.ts).toISOString()})`);
    }
    const seen = new Map<string, number>();
    const twice: string[] = [];
    for (const m of c.values()) { if (m.id && seen.has(m.id)) twice.push(`${m.id} at #${seen.get(m.id)} and #${m.seq}`); seen.set(m.id, m.seq); }
    console.log(`${h}: ${c.size} messages #${Math.min(...seqs)}..#${Math.max(...seqs)}; lacks ${lacks.length}${lacks.length ? `: ${lacks.slice(0, 5).join('; ')}` : ''}; holds ${twice.length} twice${twice.length ? `: ${twice.slice(0, 5).join('; ')}` : ''}`);
  }
  const [first, ...rest] = [...copies.values()];
  const all = [...new Set([...copies.values()].flatMap((c) => [...c.keys()]))].sort((a, b) => a - b);
  const differ = all.filter((q) => rest.some((c) => c.get(q)?.id !== first!.get(q)?.id));
  console.log(`positions where the copies hold different events: ${differ.length}${differ.length ? ` (#${differ[0]}..#${differ[differ.length - 1]})` : ''}`);
}

main();
