// The identities reach every server of a cluster. identities.json on the controller's host is
// the truth; the controller publishes it (public keys only) as one record in the KV bucket
// swarmlite-trust (R3 in a cluster), signed by the cluster root; on every other server host
// the agent (root there) reads the record, checks the root's signature and that it is newer
// than what it applied, renders auth.conf with the same pure renderer and SIGHUPs its server.
// A forged, unsigned, stale or unreadable record changes nothing (one log line).
//
// encodeRecord/verifyRecord are pure; TrustPublisher (controller) and TrustMirror (agent) the I/O.
import { existsSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { StorageType, type KV, type NatsConnection } from 'nats';
import { TOKEN_RE } from '../ids.js';
import { verifySig, type Signer } from '../signing.js';
import {
  ROLES, TRUST_BUCKET, TRUST_NUDGE, USER_RE, applyIdentities, appliedGen, identities, mirrorMarker, publishedPath, reloadServer,
  renderAuthIfStale, rootSigner, trustDir, writeGen, type Identity, type Kind,
} from './trust.js';

export const TRUST_KEY = 'identities';
/** A record is at most this big (nats-server's default max_payload): ~3000 identities. */
const MAX_RECORD = 1024 * 1024;
const KINDS: readonly Kind[] = ['controller', 'agent', 'user', 'superuser', 'joiner'];
const NKEY_USER_RE = /^U[A-Z2-7]{55}$/;

export interface TrustRecord { v: 1; gen: number; ids: Identity[]; sig: string }

const signedBytes = (gen: number, ids: Identity[]): Buffer => Buffer.from(`swarmlite-trust-v1\n${gen}\n${JSON.stringify(ids)}`);

/** Only the public fields, in one order: what the servers need and the signature covers. Pure. */
export function publicIds(ids: Identity[]): Identity[] {
  return ids.map((i) => ({ name: i.name, kind: i.kind, ...(i.role ? { role: i.role } : {}), ...(i.node ? { node: i.node } : {}), key: i.key,
    ...(i.expires !== undefined ? { expires: i.expires } : {}) }));
}

/** The record for generation `gen`, signed by the root. Pure but for the signature. */
export function encodeRecord(gen: number, ids: Identity[], root: Signer): Uint8Array {
  const pub = publicIds(ids);
  const r: TrustRecord = { v: 1, gen, ids: pub, sig: root.sign(signedBytes(gen, pub)) };
  return Buffer.from(JSON.stringify(r));
}

/** What is wrong with one identity of a record, if anything. Pure. */
function badIdentity(i: unknown): string | undefined {
  if (typeof i !== 'object' || i === null) return 'not an object';
  const x = i as Record<string, unknown>;
  if (typeof x.name !== 'string' || !USER_RE.test(x.name)) return 'bad name';
  if (!KINDS.includes(x.kind as Kind)) return `${x.name}: bad kind`;
  if (typeof x.key !== 'string' || !NKEY_USER_RE.test(x.key)) return `${x.name}: bad key`;
  if (x.role !== undefined && !ROLES.includes(x.role as never)) return `${x.name}: bad role`;
  if (x.node !== undefined && (typeof x.node !== 'string' || !TOKEN_RE.test(x.node))) return `${x.name}: bad node`;
  if (x.kind === 'agent' && x.node === undefined) return `${x.name}: an agent without its node`;
  if (x.expires !== undefined && !Number.isSafeInteger(x.expires)) return `${x.name}: bad expiry`;
  return undefined;
}

/** The record if it is well formed and the root signed it; else what is wrong (one line). Pure. */
export function verifyRecord(bytes: Uint8Array, root: string): { gen: number; ids: Identity[] } | string {
  if (bytes.length > MAX_RECORD) return `the record is ${bytes.length} bytes (at most ${MAX_RECORD})`;
  let r: TrustRecord;
  try { r = JSON.parse(Buffer.from(bytes).toString('utf8')) as TrustRecord; } catch { return 'the record is not JSON'; }
  if (typeof r !== 'object' || r === null || r.v !== 1) return 'the record is not a v1 trust record';
  if (!Number.isSafeInteger(r.gen) || r.gen < 1) return 'the record has no generation';
  if (!Array.isArray(r.ids)) return 'the record has no identities';
  const names = new Set<string>();
  for (const i of r.ids) {
    const why = badIdentity(i);
    if (why) return `the record's identity is malformed (${why})`;
    if (names.has(i.name)) return `the record names ${i.name} twice`;
    names.add(i.name);
  }
  // the signature covers the canonical form: extra fields in an identity are not carried
  if (typeof r.sig !== 'string' || !verifySig(root, signedBytes(r.gen, publicIds(r.ids)), r.sig)) return 'the record is not signed by the cluster root';
  return { gen: r.gen, ids: publicIds(r.ids) };
}

/** What a mirror does with a verified record, given the generation it applied last. Pure. */
export function decide(gen: number, applied: number): 'apply' | 'same' | 'stale' {
  return gen > applied ? 'apply' : gen === applied ? 'same' : 'stale';
}

/** Logs each distinct message once (a bad record is read again at every poll). */
function onceLogger(log: (line: string) => void): (key: string, line: string) => void {
  let last = '';
  return (key, line) => { if (key !== last) { last = key; log(line); } };
}

/** Runs `f` one at a time; a call while it runs makes it run once more after (a change during a read is not lost). */
function coalesced(f: () => Promise<void>, onError: (err: Error) => void): () => Promise<void> {
  let busy = false, again = false;
  return async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do { again = false; await f(); } while (again);
    } catch (err) { onError(err as Error); } finally { busy = false; }
  };
}

/**
 * The controller's side, on the host whose identities.json is the truth: when identities.json
 * is replaced (inotify), every `everyMs` and when asked it compares the bucket's record with identities.json and puts a new one, signed,
 * with a higher generation, when they differ, when the record is missing, forged or purged.
 * So a change made while it was down (tsctl killed after writing identities.json, a crash
 * between a join and its publication) is published when it starts again. It also re-renders
 * this host's auth.conf if a crash left it behind identities.json, and reloads the server.
 */
export class TrustPublisher {
  private kv?: KV;
  private timer?: NodeJS.Timeout;
  private watcher?: FSWatcher;
  private readonly logOnce: (key: string, line: string) => void;
  private readonly root: Signer;
  /** identities.json's stat at the last check, when the bucket was last read, the last record put */
  private seen = '';
  private lastRead = 0;
  private last?: { gen: number; json: string };
  private behind = 0;

  constructor(private o: { nc: NatsConnection; state: string; replicas: number; everyMs?: number; log?: (line: string) => void }) {
    this.logOnce = onceLogger(o.log ?? ((l) => console.error(l)));
    // a controller on a mirror host (a standby) must not put its copy, which may lag, over the truth
    if (existsSync(mirrorMarker(o.state))) throw new Error(`this host mirrors the identities (${mirrorMarker(o.state)}): the controller on the host that makes them publishes`);
    this.root = rootSigner(o.state);
  }

  /** Starts publishing; the first check runs in the background (the controller does not wait for the bucket to serve). */
  start(): void {
    void this.check();
    this.timer = setInterval(() => this.tick(), this.o.everyMs ?? 500);
    this.timer.unref();
    // tsctl user/node token write identities.json in another process: inotify tells at once
    // (the poll above is what a missed event or a watch that could not be set costs)
    try {
      this.watcher = watch(trustDir(this.o.state), (_e, f) => { if (f === 'identities.json') void this.check(); });
      this.watcher.unref();
    } catch { /* the poll alone */ }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.watcher?.close();
  }

  /**
   * The poll: a full check when identities.json was replaced since the last one (a missed inotify
   * event), else every 5 s (a purged or forged record is put right), not at every tick: rendering
   * every identity's grants costs more as the cluster grows.
   */
  private tick(): void {
    if (this.stamp() !== this.seen || Date.now() - this.lastRead > 5000) void this.check();
  }

  private stamp(): string {
    try { const s = statSync(join(trustDir(this.o.state), 'identities.json')); return `${s.ino}:${s.mtimeMs}:${s.size}`; } catch { return ''; }
  }

  /** Compares and publishes now (after a change this process made itself). */
  readonly check = coalesced(() => this.once(), (err) => {
    this.kv = undefined; // a deleted bucket is made again at the next try
    this.logOnce(`e:${err.message}`, `controller: publishing identities: ${err.message}`);
  });

  private async once(): Promise<void> {
    const { nc, state } = this.o;
    this.seen = this.stamp();
    if (renderAuthIfStale(state)) {
      reloadServer(state);
      this.o.log?.('controller: auth.conf was behind identities.json (an interrupted change): rendered again, server reloaded');
    }
    const ids = publicIds(identities(state));
    this.kv ??= await nc.jetstream().views.kv(TRUST_BUCKET, { history: 5, storage: StorageType.File, replicas: this.o.replicas });
    const e = await this.kv.get(TRUST_KEY);
    this.lastRead = Date.now();
    const cur = e && e.operation === 'PUT' ? verifyRecord(e.value, this.root.pub) : undefined;
    const json = JSON.stringify(ids);
    if (typeof cur === 'object' && JSON.stringify(cur.ids) === json) return;
    // a replica behind this process's own put (direct gets go to any): read again at the next
    // tick rather than put again; an older record that stays (a replay) is put right after that
    if (typeof cur === 'object' && this.last && cur.gen < this.last.gen && this.last.json === json && this.behind++ < 3) { this.lastRead = 0; return; }
    this.behind = 0;
    // newer than anything put before: the bucket's (a forged one's generation is not trusted),
    // this host's last (the bucket may have been purged) and the clock
    const gen = Math.max(Date.now(), (typeof cur === 'object' ? cur.gen : 0) + 1, appliedGen(state) + 1);
    await this.kv.put(TRUST_KEY, encodeRecord(gen, ids, this.root));
    writeGen(publishedPath(state), gen);
    this.last = { gen, json };
    nc.publish(TRUST_NUDGE, String(gen)); // a hint: the generation to wait for
    this.logOnce(`p:${gen}`, `controller: identities published (#${gen}, ${ids.length} identities${typeof cur === 'string' ? `; the bucket's record was refused: ${cur}` : ''})`);
  }
}

/**
 * A mirror server host's side (the agent, root there): reads the record when nudged and every
 * `everyMs`, applies a verified newer one (identities.json, auth.conf, SIGHUP to the local
 * nats-server), keeps its config on anything else.
 */
export class TrustMirror {
  private kv?: KV;
  private timer?: NodeJS.Timeout;
  private sub?: { unsubscribe(): void };
  private readonly logOnce: (key: string, line: string) => void;
  constructor(private o: { nc: NatsConnection; state: string; root: string; everyMs?: number; log?: (line: string) => void }) {
    this.logOnce = onceLogger(o.log ?? ((l) => console.error(l)));
  }

  start(): void {
    this.sub = this.o.nc.subscribe(TRUST_NUDGE, { callback: (_e, m) => void this.nudged(Number(m.string())) });
    this.timer = setInterval(() => void this.check(), this.o.everyMs ?? 2000);
    this.timer.unref();
    void this.check();
  }

  /**
   * A nudge names the generation put. A read may be answered by a replica that has not stored
   * it yet (direct gets go to any), so it is read again for up to ~1 s until it is there. Only
   * a hint: what is applied is what verifies; a wrong one costs at most ten reads.
   */
  private async nudged(gen: number): Promise<void> {
    for (let k = 0; k < 10; k++) {
      await this.check();
      if (!Number.isSafeInteger(gen) || appliedGen(this.o.state) >= gen) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  stop(): void {
    this.sub?.unsubscribe();
    if (this.timer) clearInterval(this.timer);
  }

  readonly check = coalesced(() => this.once(), (err) => {
    this.kv = undefined;
    // no bucket yet (the controller makes it) is not news
    if (!/not found|no responders|timeout|503/i.test(err.message)) this.logOnce(`e:${err.message}`, `agent: reading the identities' record: ${err.message}`);
  });

  private async once(): Promise<void> {
    const { state, root } = this.o;
    this.kv ??= await this.o.nc.jetstream().views.kv(TRUST_BUCKET, { bindOnly: true });
    const e = await this.kv.get(TRUST_KEY);
    if (!e) return;
    const log = (line: string) => this.logOnce(`r:${e.revision}`, `agent: identities' record (revision ${e.revision}) refused, the server keeps its config: ${line}`);
    if (e.operation !== 'PUT') return log(`it was ${e.operation === 'DEL' ? 'deleted' : 'purged'}`);
    const r = verifyRecord(e.value, root);
    if (typeof r === 'string') return log(r);
    const applied = appliedGen(state);
    const d = decide(r.gen, applied);
    if (d === 'stale') return log(`generation #${r.gen} is older than the applied #${applied}`);
    if (d === 'same') return;
    applyIdentities(state, r.gen, r.ids, () => reloadServer(state));
    this.logOnce(`a:${r.gen}`, `agent: identities #${r.gen} applied (${r.ids.length} identities), server reloaded`);
  }
}
