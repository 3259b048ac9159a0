// tsctl's transport: the controller's verbs (api.*) and the agents' (agent.<node>.*), through
// the shared rpc contract. Every failure becomes a CliError: one line, exit status by code.
import { connect, type NatsConnection, type TlsOptions } from 'nats';
import { readFileSync } from 'node:fs';
import { checkServerIdentity, createSecureContext, type PeerCertificate, type SecureContext } from 'node:tls';
import { RpcError, type RpcCode, type Verb } from '../shared/rpc.js';
import { call, TransportError } from '../shared/nats/rpc.js';
import { STREAM, subjects } from '../shared/subjects.js';
import { io, mark, me, waitMs } from './session.js';
import { connectOptions, type Creds } from '../shared/nats/trust.js';

/** An error tsctl reports as one line and exit code 125. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 125) { super(message); this.name = 'CliError'; }
}

/** Like docker's CLI: every error of tsctl's own (the request, the cluster) is 125. */
export function exitCodeFor(_code: RpcCode): number {
  return 125;
}

/** Connects as `creds` (its url unless `url` is given); without creds, anonymously (a secured server refuses). */
export async function dial(url: string | undefined, creds: Creds | null): Promise<NatsConnection> {
  const where = url ?? creds?.url ?? 'nats://127.0.0.1:4222';
  try {
    const auth = creds ? connectOptions(creds, where) : { servers: where };
    const tls = creds && 'tls' in auth && auth.tls ? clusterTls(creds.ca) : undefined;
    // node's TLS options pass through nats.js's to tls.connect
    if (tls) auth.tls = tls.options as TlsOptions;
    mark('dial');
    const restore = creds ? rootStoreOf(creds.ca) : () => undefined;
    try {
      // noAsyncTraces: nats.js otherwise captures a stack (`new Error`) for every request, each
      // chunk a pull puts included (~10 ms of CPU in a 36 MB pull), for traces tsctl's one-line
      // errors never show
      const pending = connect({ ...auth, name: 'tsctl', maxReconnectAttempts: 0, timeout: 3000, noAsyncTraces: true });
      // the TCP connect is under way and the server is about to send its INFO: the client's
      // own first-use costs (the TLS context, OpenSSL's first Ed25519 key and signature) are
      // paid while it waits for that, not after (each is needed once INFO came)
      if (tls) setImmediate(() => { tls.prepare(); if (creds?.nkey && 'authenticator' in auth) warmSigner(auth.authenticator); });
      const c = await pending;
      mark('connected');
      return c;
    } finally { restore(); }
  } catch (err) {
    const why = (err as Error).message;
    if (!creds) throw new CliError(`the cluster at ${where} refused a connection without credentials (${why}): --creds FILE, SWARMLITE_CREDS or ~/.config/swarmlite/creds`);
    if (/authori[sz]ation/i.test(why)) throw new CliError(`the cluster at ${where} refused the credentials of "${creds.name}" (revoked?)`);
    throw new CliError(`cannot reach the cluster at ${where}: ${why} (is it up? ops/up starts one; --nats or SWARMLITE_NATS choose another)`);
  }
}

/**
 * The TLS options for a cluster whose CA is `caFile`: that CA alone is trusted (a context
 * given a CA trusts nothing else), the server's name checked by serverIdentity. The CA is
 * read now, synchronously (nats.js's caFile reads it through the thread pool after the
 * server's INFO, four round trips on the connect path); the context is made by `prepare`, or
 * on first use (nats.js copies the options when it starts TLS).
 */
export function clusterTls(caFile: string): { options: { readonly secureContext: SecureContext; checkServerIdentity: typeof serverIdentity }; prepare: () => SecureContext } {
  let ca: Buffer;
  try { ca = readFileSync(caFile); } catch (err) {
    throw new Error(`the cluster's CA ${caFile} (named by the credentials) cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let ctx: SecureContext | undefined;
  const prepare = () => (ctx ??= createSecureContext({ ca }));
  return { options: { get secureContext() { return prepare(); }, checkServerIdentity: serverIdentity }, prepare };
}

/**
 * One signature of a fixed text with the credentials' key, thrown away: imports the key
 * (the nonce signer keeps it) and pays OpenSSL's first Ed25519 signature before the server's
 * nonce is there. Nothing about the key leaves the process.
 */
function warmSigner(authenticator: unknown): void {
  try { (authenticator as (nonce?: string) => unknown)('tsctl warm-up'); } catch { /* the real challenge will say */ }
}

/**
 * node's tls.checkServerIdentity without its first-call cost. node first asks net.isIP of
 * the name, and V8 compiles isIPv6's large regular expression on that first use: 4-5 ms of
 * CPU in every tsctl call (nats.js names the server "localhost" when its url is an address,
 * so the name is never IPv4). Accepted here: only what node's check accepts, a certificate
 * whose subjectAltName lists the host as a DNS name, the host a plain lower-case DNS name
 * (a letter or hyphen in it: never an IP address; no wildcard; no empty label). Anything
 * else (an address, a wildcard, quoted names, a mismatch) is node's own check, so its
 * errors are node's.
 */
export function serverIdentity(host: string, cert: PeerCertificate): Error | undefined {
  const san = cert.subjectaltname;
  if (PLAIN_HOST.test(host) && san && !san.includes('"') && san.split(', ').includes(`DNS:${host}`)) return undefined;
  return checkServerIdentity(host, cert);
}
const PLAIN_HOST = /^(?=[a-z0-9.-]*[a-z-])[a-z0-9-]+(\.[a-z0-9-]+)*$/;

/**
 * Makes node's first TLS context cheap. Giving a context a CA (tls.ca: tsctl trusts only
 * the cluster's) makes node build its process-wide root store first, unused by that
 * context, from ~140 certificates parsed one by one: 15-70 ms of every tsctl call. Started
 * with --use-openssl-ca (bin/tsctl.cjs does), node builds it from OpenSSL's default paths
 * instead, which these variables name: the cluster's CA and no directory. Trust is the same
 * either way (only tls.ca counts); the variables are the user's again once connected, so
 * nothing tsctl runs later sees them. Without that flag they change nothing.
 */
export function rootStoreOf(ca: string): () => void {
  const saved = { SSL_CERT_FILE: process.env.SSL_CERT_FILE, SSL_CERT_DIR: process.env.SSL_CERT_DIR };
  process.env.SSL_CERT_FILE = ca;
  process.env.SSL_CERT_DIR = '';
  return () => {
    for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
  };
}

/** Every page of a paged controller verb, in order. */
export async function pages<Q extends { offset?: number }, T>(nc: NatsConnection, v: Verb<Q, { items: T[]; next?: number }>, req: Q, timeout?: number): Promise<T[]> {
  const out: T[] = [];
  for (let offset: number | undefined = 0; offset !== undefined;) {
    const page: { items: T[]; next?: number } = await api(nc, v, { ...req, offset }, timeout);
    out.push(...page.items);
    offset = page.next;
  }
  return out;
}

/** Calls a controller verb; one that found no controller while one is to be expected is sent again (untilServed). */
export function api<Req, Rep>(nc: NatsConnection, v: Verb<Req, Rep>, req: Req, timeoutMs = 15000): Promise<Rep> {
  const timeout = waitMs(timeoutMs);
  mark(`api.${v.name}`);
  return asCli(untilServed(nc, (ms) => call(nc, `${subjects.api}.${me()}`, v, req, ms), timeout), timeout, () => 'no controller is answering (ops/up starts one)').finally(() => mark(`api.${v.name}.reply`));
}

/**
 * Whether a controller is to be waited for after a request found none: the log exists (only a
 * controller makes it) or JetStream did not answer in time (its raft groups electing). A fresh
 * install, a server without JetStream, or a refusal: not waited for.
 */
export async function controllerExpected(nc: NatsConnection, ms = 1000): Promise<boolean> {
  try {
    const r = await nc.request(`$JS.API.STREAM.INFO.${STREAM}`, new Uint8Array(0), { timeout: ms });
    const error = (JSON.parse(new TextDecoder().decode(r.data)) as { error?: { code?: number } }).error;
    return !error || error.code === 503;
  } catch (err) {
    return /TIMEOUT/.test(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
  }
}

/**
 * Sends a request again, every 250 ms within `total`, while it finds no controller at all and
 * one is expected. Safe for every verb: "no responders" means no controller got it. The gap
 * this covers: a cut host's server that rejoins its cluster makes nats-server 2.9 elect every
 * raft group again (the JetStream meta leader, the lease's bucket, the log: 4-11 s, measured by
 * test/bench/fleet-loss.ts), the leading controller cannot renew its lease and steps aside, and
 * no controller serves until the next takes over (~11 s after a heal in the trace); a `service
 * create` sent then failed at once with "no controller is answering".
 */
async function untilServed<T>(nc: NatsConnection, send: (ms: number) => Promise<T>, total: number): Promise<T> {
  const t0 = Date.now();
  let expected: boolean | undefined;
  let told = false;
  for (;;) {
    try { return await send(Math.max(100, total - (Date.now() - t0))); } catch (err) {
      if (!(err instanceof TransportError && err.reason === 'no-responders')) throw err;
      expected ??= await controllerExpected(nc);
      if (!expected || Date.now() - t0 + 350 >= total) throw err;
      // a person at a terminal is told why nothing happens yet; scripts keep their one-line error
      if (!told && io().stderr.isTTY && Date.now() - t0 >= 1000) {
        told = true;
        io().stderr.write(`tsctl: no controller is answering yet (an election or a takeover?); waiting up to ${Math.round(total / 1000)} s\n`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** How long after its first try a request that found no controller at all is tried again (a failover's gap). */
const NO_LEADER_MS = 5000;
/**
 * apiAgain's tries in its first EARLY_MS last EARLY_TRY_MS each. A try sent before the new
 * leader serves goes only to the deposed leader's queue group (the servers keep a cut-off
 * server's interest for seconds) and is never answered; the new leader serves about 2 s after a
 * cut, so a run sent at the cut waited for its second try at 4 s (test/bench/failover.ts).
 */
const EARLY_MS = 4000, EARLY_TRY_MS = 1000;

/**
 * A controller verb that is safe to send again (run: the request names its container's id, and
 * a repeat of a run already done is answered as the first was), tried for `tryMs` at a time
 * within `timeoutMs`. Right after a failover a request could go to the deposed leader, whose
 * host was cut off but whose interest the servers still held, and waited out the whole 15 s;
 * a request that found no controller (between two leaders) is tried again for 5 s. Its first
 * tries are short (EARLY_TRY_MS); a slow first try's repeat waits behind it (the controller
 * serialises mutations) and is answered as the first.
 */
export async function apiAgain<Req, Rep>(nc: NatsConnection, v: Verb<Req, Rep>, req: Req, timeoutMs = 15000, tryMs = 4000): Promise<Rep> {
  const total = waitMs(timeoutMs);
  const t0 = Date.now();
  let expected: boolean | undefined;
  mark(`api.${v.name}`);
  try {
    for (let k = 0; ; k++) {
      const left = total - (Date.now() - t0);
      const early = Date.now() - t0 < EARLY_MS ? EARLY_TRY_MS : tryMs;
      const p = call(nc, `${subjects.api}.${me()}`, v, req, Math.max(100, Math.min(tryMs, early, left)));
      try { return await p; } catch (err) {
        // past NO_LEADER_MS only while a controller is expected (untilServed: a heal's elections)
        const gone = err instanceof TransportError && err.reason === 'no-responders' && Date.now() - t0 + 350 < total &&
          (Date.now() - t0 < NO_LEADER_MS || (expected ??= await controllerExpected(nc)));
        // a controller that lost its lease while the request was on its way answers "unavailable"
        // (it writes nothing then): the new leader answers a repeat (a lost server's elections, fleet test)
        const deposed = err instanceof RpcError && err.code === 'unavailable' && Date.now() - t0 + 350 < total;
        const again = gone || deposed || (err instanceof TransportError && err.reason === 'timeout' && Date.now() - t0 + 100 < total);
        if (!again) return await asCli(p, total, () => 'no controller is answering (ops/up starts one)');
        if (gone || deposed) await new Promise((r) => setTimeout(r, 250));
      }
    }
  } finally { mark(`api.${v.name}.reply`); }
}

/** Calls a verb of one node's agent. */
export function agent<Req, Rep>(nc: NatsConnection, node: string, v: Verb<Req, Rep>, req: Req, timeoutMs = 15000): Promise<Rep> {
  const timeout = waitMs(timeoutMs);
  return asCli(call(nc, subjects.agent(node), v, req, timeout), timeout, () => `no agent answers on ${node}`);
}

async function asCli<T>(p: Promise<T>, timeout: number, noResponders: () => string): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof RpcError) throw new CliError(err.message, exitCodeFor(err.code));
    if (err instanceof TransportError) {
      if (err.reason === 'no-responders') throw new CliError(noResponders());
      if (err.reason === 'denied') throw new CliError(`permission denied: "${me()}" may not ask ${err.subject.split('.').slice(err.subject.startsWith('api.') ? 2 : 0).join('.')} (the server refused it)`);
      if (err.reason === 'timeout') throw new CliError(`${err.subject} timed out after ${timeout} ms`);
      throw new CliError(`${err.subject}: ${err.message}`);
    }
    throw err;
  }
}
