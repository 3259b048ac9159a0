// Who may do what on the cluster's NATS server, enforced by nats-server itself: every
// identity is an nkey user with publish/subscribe allow lists, the client port speaks TLS
// with a CA of the cluster's own, and nothing is anonymous. One generator for ops/up,
// `tsctl user`, and the tests (test/helpers/cluster.ts), so they cannot drift.
//
// <state>/trust/            identities.json (the truth), auth.conf (rendered from it),
//                           ca.{pem,key}, server.{pem,key}, root.seed (signs key registrations)
// <state>/trust/creds/<name>.creds   one identity's seed, url, CA path (mode 0600)
// <state>/nats.conf         listen + tls + include auth.conf + jetstream
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { homedir, hostname, networkInterfaces } from 'node:os';
import { connect, nkeys, nkeyAuthenticator, type ConnectionOptions, type NatsConnection } from 'nats';
import { randomBytes } from 'node:crypto';
import { ARCHIVE_BUCKET, CONTROLLER_ROOTS, durableOf, IMAGE_BUCKET, STREAM, subjects } from '../subjects.js';
import { readerNames } from './readers.js';
import { keyOf, registration, signer, keySubjectToken, type Signer } from '../signing.js';
import { createPrivateKey, sign as edSign, type KeyObject } from 'node:crypto';

export type Role = 'admin' | 'operator' | 'viewer';
export const ROLES: readonly Role[] = ['admin', 'operator', 'viewer'];
/**
 * `superuser` may publish and subscribe anything (no stream administration beyond what
 * that gives): what someone holding the server's own config could do. ops/up never makes
 * one; tests use it to put junk and forgeries into the log that readers must refuse.
 */
export type Kind = 'controller' | 'agent' | 'user' | 'superuser' | 'joiner';

/** One authenticated identity. `name` is one subject token: it names its inbox and, for users, its API subjects. */
export interface Identity {
  name: string; kind: Kind; role?: Role; node?: string; key: string;
  /** a join token's end of life (ms since the epoch): refused after it, pruned by the controller */
  expires?: number;
}

/**
 * What a process needs to connect as an identity. `root`: the cluster root's public key
 * (hex), what key registrations must be signed by; `reg`: for an event source (controller,
 * agent), its signing key's registration, signed by the root when the identity was made.
 */
export interface Creds {
  name: string; kind: Kind; role?: Role; node?: string; seed: string; url: string; ca: string; root: string;
  reg?: { src: string; key: string; rootSig: string };
  /** the public nkey (U…), so connecting needs no key derivation */
  nkey?: string;
}

export const USER_RE = /^[a-z][a-z0-9_-]{0,31}$/;
/**
 * A node's name: one subject token (shared/ids.ts TOKEN_RE) short enough for its identity,
 * node-<node>, to be a USER_RE name. Its grants are subjects built from it (agent.<node>.>,
 * its durable agent-<node>, that durable's advisories): a `.`, `*` or `>` in it would make
 * one node's grant another's, or everyone's.
 */
export const NODE_RE = /^[a-z0-9][a-z0-9_-]{0,26}$/;
export const agentIdentity = (node: string): string => `node-${node}`;
export const inboxPrefix = (name: string): string => `_INBOX.${name}`;

/** Read-only verbs of the controller a viewer may call (shared/api/controller.ts names). */
export const VIEWER_VERBS = ['ps', 'inspect', 'nodes', 'image.ls', 'network.ls', 'network.inspect', 'info', 'volume.ls', 'volume.inspect', 'service.ls', 'service.ps', 'service.inspect'];
/** Controller verbs for admins only. */
export const ADMIN_VERBS = ['node.rm', 'log.archive', 'node.update'];
/** Agent verbs only the controller calls (it authenticated the user it names in them). */
const CONTROLLER_AGENT_VERBS = ['exec', 'copyin'];
/** Agent verbs operators and admins may call (shared/api/agent.ts); a viewer not `logs` (containers' output). */
// a viewer sees no container's insides: not its output, its files (archive) or their names (diff)
const AGENT_VERBS = ['logs', 'stats', 'info', 'top', 'diff', 'archive', 'put'];
const VIEWER_AGENT_VERBS = ['stats', 'info', 'top'];

const OBJ = `OBJ_${IMAGE_BUCKET}`;
/** The log's anchor (shared/nats/anchor.ts): written by the controller, read by every auditor. */
const ANCHOR = 'KV_swarmlite-anchor';
/** The controllers' leader lease (controller/lease.ts): only controllers read or write it. */
const LEASE = 'KV_swarmlite-leader';
/** The log's sealed archive segments (shared/nats/archive.ts): the controller seals, auditors read. */
const ARCHIVE = `OBJ_${ARCHIVE_BUCKET}`;
/** Snapshots for view --at (shared/nats/snapshots.ts): written by the controller, read by everyone. */
const SNAPS = 'OBJ_swarmlite-snapshots';
/**
 * The identities every server of a cluster renders its grants from (shared/nats/trust-dist.ts):
 * the controller alone writes the bucket, the agents of server hosts read it; a core-NATS
 * nudge on TRUST_NUDGE says "read it now" (it carries nothing, so a forged one costs a read).
 */
export const TRUST_BUCKET = 'swarmlite-trust';
export const TRUST_NUDGE = 'trust.changed';
const TRUST = `KV_${TRUST_BUCKET}`;
const snapsWrite = ['$O.swarmlite-snapshots.>', `$JS.API.STREAM.CREATE.${SNAPS}`, `$JS.API.STREAM.UPDATE.${SNAPS}`, `$JS.API.STREAM.PURGE.${SNAPS}`];

/**
 * Reading a whole stream: info, gets, consumers with any filter and their pulls. A get names
 * what it fetches in its body (the server cannot check it), so only whole-stream readers have it.
 */
const jsRead = (s: string): string[] => [
  `$JS.API.STREAM.INFO.${s}`, `$JS.API.STREAM.MSG.GET.${s}`, `$JS.API.DIRECT.GET.${s}`, `$JS.API.DIRECT.GET.${s}.>`,
  `$JS.API.CONSUMER.CREATE.${s}`, `$JS.API.CONSUMER.CREATE.${s}.>`, `$JS.API.CONSUMER.INFO.${s}.*`,
  `$JS.API.CONSUMER.MSG.NEXT.${s}.*`, `$JS.API.CONSUMER.DELETE.${s}.*`,
];
/**
 * Reading only some subjects of a stream: consumers whose filter is one of `filters`. The
 * JetStream API puts a named consumer's filter in the request subject
 * (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`) and the server refuses a config whose
 * filter differs from it, so a publish grant on that subject is a read grant on those subjects.
 * Only under `who`'s own consumer names (readers.ts), and only those may be pulled from, looked
 * at or deleted: with any name, the one who learnt another's consumer name (the controller's
 * fold, another node's reads) could pull what it may not read from it, or delete it.
 */
const jsReadOnly = (s: string, who: string, filters: string[]): string[] => {
  const names = readerNames(who);
  return [`$JS.API.STREAM.INFO.${s}`, ...names.flatMap((c) => [...filters.map((f) => `$JS.API.CONSUMER.CREATE.${s}.${c}.${f}`),
    `$JS.API.CONSUMER.INFO.${s}.${c}`, `$JS.API.CONSUMER.MSG.NEXT.${s}.${c}`, `$JS.API.CONSUMER.DELETE.${s}.${c}`])];
};
/** Reading a key-value bucket's keys by name (a get names its key in the subject or body; the bucket is readable whole): no consumer. */
const jsGet = (s: string): string[] => [`$JS.API.STREAM.INFO.${s}`, `$JS.API.STREAM.MSG.GET.${s}`, `$JS.API.DIRECT.GET.${s}`, `$JS.API.DIRECT.GET.${s}.>`];
/** Writing the image store: chunks and metas, purging an object's old chunks. */
const objWrite = [`$O.${IMAGE_BUCKET}.>`, `$JS.API.STREAM.PURGE.${OBJ}`];
/**
 * Making and editing the image store's stream: the controller's alone (it makes the bucket as it
 * starts). A stream's config is a publish grant on every subject: its `republish` puts what is
 * written to it on any subject, unchecked (a NodeDown on ev.cluster.*, a report on ev.state.*,
 * an agent's exec verb, another user's stdin), and the log's stream folds it in as well.
 */
const objAdmin = [`$JS.API.STREAM.CREATE.${OBJ}`, `$JS.API.STREAM.UPDATE.${OBJ}`];

/** A node's durable consumer: nobody else may create, pull, ack or delete it; its filter is the node's desired subjects. */
const durable = (node: string): string[] => {
  const c = durableOf(node);
  // its leader asked to step down: the agent keeps it on its own host's server (agent/consumer-home.ts)
  return [`$JS.API.CONSUMER.CREATE.${STREAM}.${c}.ev.desired.${node}.>`, `$JS.API.CONSUMER.INFO.${STREAM}.${c}`,
    `$JS.API.CONSUMER.DELETE.${STREAM}.${c}`, `$JS.API.CONSUMER.MSG.NEXT.${STREAM}.${c}`, `$JS.ACK.${STREAM}.${c}.>`,
    `$JS.API.CONSUMER.LEADER.STEPDOWN.${STREAM}.${c}`];
};
/** Denied to everyone but node N: every way to its durable, whatever filter is asked for. */
const durableDeny = (node: string): string[] => {
  const c = durableOf(node);
  return [`$JS.API.CONSUMER.CREATE.${STREAM}.${c}`, `$JS.API.CONSUMER.CREATE.${STREAM}.${c}.>`, `$JS.API.CONSUMER.DURABLE.CREATE.${STREAM}.${c}`,
    `$JS.API.CONSUMER.DELETE.${STREAM}.${c}`, `$JS.API.CONSUMER.MSG.NEXT.${STREAM}.${c}`, `$JS.ACK.${STREAM}.${c}.>`,
    `$JS.API.CONSUMER.LEADER.STEPDOWN.${STREAM}.${c}`];
};

export interface Permissions {
  publish: { allow: string[]; deny?: string[] };
  subscribe: { allow: string[]; deny?: string[] };
  allow_responses?: boolean;
}

/** The grants of one identity, given every identity (a node's durable is denied to all others). Pure. */
export function permissions(id: Identity, all: Identity[]): Permissions {
  const nodes = all.filter((i) => i.kind === 'agent' && i.node).map((i) => i.node!);
  const othersDurables = nodes.filter((n) => n !== id.node).flatMap(durableDeny);
  const inbox = `${inboxPrefix(id.name)}.>`;
  // Who serves requests (controller, agents) may publish into every identity's inbox: its replies.
  // Not nats-server's allow_responses: that books every message the server delivers with a reply
  // subject (each JetStream message carries one), which made reading the stream ~4x slower (10k
  // events: 3.0 s instead of 0.8 s), and a reload forgot it for requests in flight. Reply subjects
  // end in random tokens, so a grant on another identity's inbox does not reach its replies.
  // One wildcard, not a list of today's identities: in a cluster only the server where an
  // identity was made reloads at once, and a controller connected to another server could not
  // answer the new identity (a join token's request timed out).
  const replies = ['_INBOX.*.>'];
  // whoever audits reads the whole log, its anchor and its sealed archive
  const auditor = ['$JS.API.INFO', '$JS.API.STREAM.NAMES', ...jsRead(STREAM), ...jsRead(ANCHOR), ...jsRead(ARCHIVE), ...jsRead(SNAPS)];
  switch (id.kind) {
    case 'superuser':
      return { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } };
    // a one-time join token: it may only ask the controller to make it a node
    case 'joiner':
      return { publish: { allow: [`api.${id.name}.join`] }, subscribe: { allow: [inbox] } };
    case 'controller':
      return {
        // ev.claim.> and the leader lease's bucket: controller/lease.ts
        publish: { allow: [...CONTROLLER_ROOTS.map((r) => (r === 'controller' ? 'ev.controller' : `ev.${r}.>`)), 'ev.keys.controller', ...auditor,
          `$JS.API.STREAM.CREATE.${LEASE}`, '$KV.swarmlite-leader.>', ...jsRead(LEASE),
          // the leader keeps these streams led from other hosts than its own (controller/lease.ts keepLeadersAway)
          `$JS.API.STREAM.LEADER.STEPDOWN.${LEASE}`, `$JS.API.STREAM.LEADER.STEPDOWN.${STREAM}`,
          `$JS.API.STREAM.CREATE.${STREAM}`, `$JS.API.STREAM.UPDATE.${STREAM}`,
          `$JS.API.STREAM.CREATE.${ANCHOR}`, '$KV.swarmlite-anchor.>',
          // the identities' signed record for every server (no one else may put it)
          `$JS.API.STREAM.CREATE.${TRUST}`, `$KV.${TRUST_BUCKET}.>`, ...jsRead(TRUST), TRUST_NUDGE, ...jsRead(OBJ), ...objWrite, ...objAdmin, ...snapsWrite,
          // seals archive segments (shared/nats/archive.ts); never purges them: a sealed segment is not rewritten
          `$O.${ARCHIVE_BUCKET}.>`, `$JS.API.STREAM.CREATE.${ARCHIVE}`, '$JS.FC.>', ...replies,
          // exec is routed to the container's node by the controller, which names who asked
          ...CONTROLLER_AGENT_VERBS.map((v) => `agent.*.${v}`)], deny: othersDurables },
        subscribe: { allow: ['api.*.>', 'hb.*', inbox] },
      };
    case 'agent': {
      // a node reads only its own desired events (its durable), its own chain (to recover its
      // head and what a crash left unreported), the key registrations it checks signatures
      // with, and the anchor (the controller's key once its registration is archived)
      const n = id.node!;
      const own = [`ev.state.${n}.>`, `ev.node.${n}`, `ev.keys.${keySubjectToken(`node:${n}`)}`];
      return {
        publish: { allow: [...own, `hb.${n}`, `logs.${n}.>`, '$JS.API.INFO', '$JS.API.STREAM.NAMES',
          // the image store by direct gets alone (shared/nats/object-get.ts: a layer's meta and chunks):
          // no consumer there, so none of another's (a pull's, an operator's) to pull from or delete
          ...jsReadOnly(STREAM, id.name, [...own, 'ev.keys.controller']), ...jsGet(ANCHOR), ...durable(n), ...jsGet(OBJ), '$JS.FC.>', ...replies,
          // a server host's agent mirrors the identities' record into its server's config: read only
          ...jsGet(TRUST)] },
        // its durable's elections: moved back to its host's server at once (agent/consumer-home.ts)
        subscribe: { allow: [`agent.${n}.>`, `stdin.${n}.*.*`, inbox, TRUST_NUDGE, subjects.consumerElected(durableOf(n))] },
      };
    }
    case 'user': {
      if (id.role === 'viewer') {
        // the cluster through the controller's read verbs and the nodes' stats: neither the log
        // (desired events carry every container's environment, where secrets go) nor any output
        return {
          publish: { allow: [...VIEWER_VERBS.map((v) => `api.${id.name}.${v}`), ...VIEWER_AGENT_VERBS.map((v) => `agent.*.${v}`)],
            deny: [...ADMIN_VERBS.map((v) => `api.${id.name}.${v}`), '$JS.>'] },
          subscribe: { allow: [inbox] },
        };
      }
      // operators and admins read the whole log (events, history, view --at, audit) and every container's output
      // an operator's `tsctl exec -i` writes its own session's stdin (stdin.<node>.<user>.<execId>):
      // under its own name only, so it cannot type into another user's terminal
      const write = [...jsRead(OBJ), ...objWrite, '$JS.FC.>', `stdin.*.${id.name}.*`];
      // stream administration (delete, purge, edit, message delete) is the admin's alone
      const admin = id.role === 'admin' ? ['$JS.API.>'] : [];
      // ev.cluster.*: the controller's verdicts on the nodes (NodeDown), which end a wait for a
      // report its node cannot send (tsctl/node-watch.ts); only the controller publishes there
      return {
        publish: { allow: [`api.${id.name}.>`, ...AGENT_VERBS.map((v) => `agent.*.${v}`), ...auditor, ...write, ...admin],
          deny: id.role === 'admin' ? [] : [...ADMIN_VERBS.map((v) => `api.${id.name}.${v}`), ...nodes.flatMap(durableDeny)] },
        subscribe: { allow: [inbox, 'logs.>', 'ev.state.>', 'ev.cluster.*'] },
      };
    }
  }
}

/** The `authorization` block for every identity. Pure; JSON is valid nats-server config. */
export function renderAuth(ids: Identity[]): string {
  const users = ids.map((i) => ({ nkey: i.key, permissions: permissions(i, ids) }));
  return `# generated from identities.json by swarmlite (shared/nats/trust.ts); edit with tsctl user\nauthorization {\n  users = ${JSON.stringify(users, null, 2)}\n}\n`;
}

export interface ServerOptions { port: number; stateDir: string; cluster?: ClusterOptions }

/**
 * One server of a JetStream cluster (ops/up --cluster, ops/fleet): it listens on every
 * address (other hosts reach it; the control-plane guard keeps containers out), routes to
 * the others over TLS with the cluster's own CA on both ends, and has a name of its own.
 */
export interface ClusterOptions { serverName: string; routePort: number; routes: string[] }

const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const ROUTE_RE = /^nats(-route)?:\/\/[A-Za-z0-9.-]+:[0-9]{1,5}$/;

/** Checks a cluster's options: one-line errors for a bad name or route url. Pure. */
export function checkCluster(c: ClusterOptions): ClusterOptions {
  if (!NAME_RE.test(c.serverName)) throw new TrustError(`invalid server name "${c.serverName}"`);
  if (!Number.isInteger(c.routePort) || c.routePort < 1 || c.routePort > 65535) throw new TrustError(`invalid route port "${c.routePort}"`);
  if (c.routes.length === 0) throw new TrustError('a cluster needs its routes (nats://host:6222,...)');
  for (const r of c.routes) if (!ROUTE_RE.test(r)) throw new TrustError(`invalid route "${r}": nats://host:port`);
  return c;
}

/** nats-server's config: loopback only (one host) or a clustered server; TLS, no anonymous access, JetStream. Pure. */
export function renderServerConf(o: ServerOptions): string {
  const t = trustDir(o.stateDir);
  const tls = `cert_file: "${join(t, 'server.pem')}", key_file: "${join(t, 'server.key')}", timeout: 3`;
  const c = o.cluster && checkCluster(o.cluster);
  return [
    // a server cut off (not dead) keeps its clients' interest alive on its peers until a route
    // misses its pings: with the default 2 min, requests went to a controller's stale
    // subscription there and timed out long after a standby had taken over (controller/lease.ts)
    ...(c ? [`server_name: "${c.serverName}"`, 'ping_interval: "2s"', 'ping_max: 3'] : []),
    `listen: ${c ? '0.0.0.0' : '127.0.0.1'}:${o.port}`,
    `pid_file: "${join(t, 'nats-server.pid')}"`,
    `tls { ${tls} }`,
    'include "trust/auth.conf"', // relative to this file (nats-server resolves includes so)
    `jetstream { store_dir: "${join(o.stateDir, 'nats')}" }`,
    // routes: only a server holding a certificate of this cluster's CA may join (verify)
    ...(c ? [`cluster { name: "swarmlite", listen: "0.0.0.0:${c.routePort}", routes: ${JSON.stringify(c.routes.map((r) => r.replace(/^nats:/, 'nats-route:')))},`,
      `  tls { ${tls}, ca_file: "${join(t, 'ca.pem')}", verify: true } }`] : []),
    '',
  ].join('\n');
}

export const trustDir = (state: string): string => join(state, 'trust');
export const credsPath = (state: string, name: string): string => join(trustDir(state), 'creds', `${name}.creds`);

/** A typed failure of the trust set-up (a missing tool, a bad name). */
export class TrustError extends Error {
  constructor(message: string) { super(message); this.name = 'TrustError'; }
}

/**
 * Makes whatever is missing of the cluster's trust under `state`: CA and server
 * certificate (openssl), root key, the controller and admin identities, the node's
 * identity if `node` is given, auth.conf and nats.conf. Idempotent: a second call keeps
 * every key (a restarted ops/up must not lock its own processes out).
 */
export function initTrust(state: string, o: { port: number; node?: string; cluster?: ClusterOptions; sans?: string[]; url?: string }): void {
  const t = trustDir(state);
  mkdirSync(join(t, 'creds'), { recursive: true, mode: 0o700 });
  chmodSync(t, 0o700);
  const sans = [...new Set(['127.0.0.1', ...(o.sans ?? [])])];
  for (const a of sans) if (!/^[A-Za-z0-9.-]{1,253}$/.test(a)) throw new TrustError(`invalid address "${a}" for the server certificate`);
  if (!existsSync(join(t, 'ca.pem'))) makeCerts(t, sans);
  // a host or route added later: the same CA signs a server certificate naming it too
  else if (!existsSync(join(t, 'server.pem')) || !sans.every((a) => certSans(t).includes(a))) makeServerCert(t, [...new Set([...certSans(t), ...sans])]);
  // the root signs key registrations only; it never connects to anything
  if (!existsSync(join(t, 'root.seed'))) writeSecret(join(t, 'root.seed'), randomBytes(32).toString('hex'));
  const url = o.url ?? `tls://127.0.0.1:${o.port}`;
  const ids = identities(state);
  const want: Omit<Identity, 'key'>[] = [{ name: 'controller', kind: 'controller' }, { name: 'admin', kind: 'user', role: 'admin' }];
  if (o.node) want.push({ name: agentIdentity(o.node), kind: 'agent', node: o.node });
  for (const w of want) if (!ids.some((i) => i.name === w.name) || !existsSync(credsPath(state, w.name))) addIdentity(state, w, url, false);
  // the url is the port of this start (ops/up --nats-port may change it)
  for (const i of identities(state)) {
    const p = credsPath(state, i.name);
    if (existsSync(p)) { const c = readCreds(p); if (c.url !== url) writeSecret(p, JSON.stringify({ ...c, url }, null, 2)); }
  }
  writeAuth(state);
  writeFileSync(join(state, 'nats.conf'), renderServerConf({ port: o.port, stateDir: state, ...(o.cluster ? { cluster: o.cluster } : {}) }));
}

export function identities(state: string): Identity[] {
  const f = join(trustDir(state), 'identities.json');
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) as Identity[] : [];
}

const rootSeed = (state: string): Buffer => Buffer.from(readFileSync(join(trustDir(state), 'root.seed'), 'utf8').trim(), 'hex');

/** The cluster root's public key, hex (what a key registration must be signed by). */
export function rootKey(state: string): string {
  return keyOf(rootSeed(state)).pub;
}

/** The event source an identity writes as, if it writes events. */
export const sourceOf = (w: { kind: Kind; node?: string }): string | undefined =>
  w.kind === 'controller' ? 'controller' : w.kind === 'agent' && w.node ? `node:${w.node}` : undefined;

/**
 * The raw ed25519 seed behind an nkey seed (base32 of two prefix bytes, 32 seed bytes, a
 * CRC16): the identity signs events and the server's nonce with it through node:crypto.
 * nkeys.js's own signing is pure JS (~6-17 ms a signature here), which every tsctl call paid.
 */
export function rawSeed(seed: string): Uint8Array {
  const out = base32(seed);
  if (out.length !== 36) throw new TrustError('the credentials\' seed is not an nkey seed');
  return Uint8Array.from(out.subarray(2, 34));
}

/** The bytes of an nkey's base32 text (a seed or a public key). */
function base32(text: string): Buffer {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const out: number[] = [];
  let bits = 0, acc = 0;
  for (const ch of text) {
    const v = A.indexOf(ch);
    if (v < 0) throw new TrustError('the credentials\' seed is not an nkey seed');
    acc = (acc << 5) | v; bits += 5;
    if (bits >= 8) { out.push((acc >> (bits - 8)) & 0xff); bits -= 8; }
  }
  return Buffer.from(out);
}

/** An event source's signer and the registration to append before its first signed event. */
export function signerOf(c: Creds): { signer: Signer; reg: NonNullable<Creds['reg']> } {
  if (!c.reg) throw new TrustError(`credentials of "${c.name}" carry no key registration (not an event source)`);
  const s = signer(rawSeed(c.seed));
  if (s.pub !== c.reg.key) throw new TrustError(`credentials of "${c.name}": the registered key is not this seed's`);
  return { signer: s, reg: c.reg };
}

/** Adds (or re-keys) an identity, writes its creds file and returns its path. `apply` re-renders auth.conf. */
export function addIdentity(state: string, w: Omit<Identity, 'key'>, url?: string, apply = true, replacing?: string): string {
  if (w.kind === 'agent') {
    if (typeof w.node !== 'string' || !NODE_RE.test(w.node)) throw new TrustError(`invalid node name ${JSON.stringify(w.node ?? '')}: a lower-case letter or digit, then letters, digits, _ or - (at most 27)`);
    if (w.name !== agentIdentity(w.node)) throw new TrustError(`node ${w.node}'s identity is "${agentIdentity(w.node)}", not "${w.name}"`);
  }
  if (!USER_RE.test(w.name)) throw new TrustError(`invalid name "${w.name}": a lower-case letter, then letters, digits, _ or - (at most 32)`);
  const kp = nkeys.createUser();
  const id: Identity = { ...w, key: kp.getPublicKey() };
  const ids = identities(state).filter((i) => i.name !== w.name && i.name !== replacing);
  const t = trustDir(state);
  const adminUrl = url ?? (existsSync(credsPath(state, 'admin')) ? readCreds(credsPath(state, 'admin')).url : 'tls://127.0.0.1:4222');
  const seed = new TextDecoder().decode(kp.getSeed());
  const src = sourceOf(w);
  let reg: Creds['reg'];
  if (src) {
    const key = signer(rawSeed(seed)).pub;
    reg = { src, key, rootSig: edSign(null, registration(src, key), keyOf(rootSeed(state)).priv).toString('base64') };
  }
  const creds: Creds = { name: w.name, kind: w.kind, ...(w.role ? { role: w.role } : {}), ...(w.node ? { node: w.node } : {}),
    seed, nkey: id.key, url: adminUrl, ca: join(t, 'ca.pem'), root: rootKey(state), ...(reg ? { reg } : {}) };
  const p = credsPath(state, w.name);
  // the creds first: a crash before the identity is written leaves a seed the server does not know
  writeSecret(p, JSON.stringify(creds, null, 2));
  writeIdentities(state, [...ids, id]);
  if (replacing) rmSync(credsPath(state, replacing), { force: true });
  if (apply) writeAuth(state);
  return p;
}

/**
 * Removes identities, all or none, in one write of identities.json (what the controller's
 * TrustPublisher watches): after the servers reload, their connections are closed and they
 * cannot connect again. Returns the first name that is no identity, having changed nothing.
 */
export function removeIdentities(state: string, names: readonly string[]): string | undefined {
  const ids = identities(state);
  const unknown = names.find((n) => !ids.some((i) => i.name === n));
  if (unknown !== undefined) return unknown;
  writeIdentities(state, ids.filter((i) => !names.includes(i.name)));
  for (const n of names) rmSync(credsPath(state, n), { force: true });
  writeAuth(state);
  return undefined;
}
export const removeIdentity = (state: string, name: string): boolean => removeIdentities(state, [name]) === undefined;

/**
 * A server host that mirrors the cluster's identities (ops/up --cluster on a host without the
 * controller, ops/fleet's h2, h3): its agent renders auth.conf from the controller's signed
 * record. The host that makes identities (tsctl user, joins) never mirrors: its
 * identities.json is the truth, and a record may lag it.
 */
export const mirrorMarker = (state: string): string => join(state, 'run', 'trust-mirror');
/** The generation of the last record a mirror applied (0: none). */
const appliedPath = (state: string): string => join(trustDir(state), 'applied.gen');
/** The generation of the last record the publisher put (a copied trust dir carries it: a mirror's floor). */
export const publishedPath = (state: string): string => join(trustDir(state), 'published.gen');

function readGen(file: string): number {
  try { const n = Number(readFileSync(file, 'utf8').trim()); return Number.isSafeInteger(n) && n > 0 ? n : 0; } catch { return 0; }
}
/** Below this a record is stale on this host: what it applied, or what its copied trust had published. */
export const appliedGen = (state: string): number => Math.max(readGen(appliedPath(state)), readGen(publishedPath(state)));
export const writeGen = (file: string, gen: number): void => writeSecret(file, `${gen}\n`);

/**
 * A mirror's apply of a verified record: identities.json (a restarted ops/up renders from it),
 * auth.conf, `reload`, then the generation: a reload that failed (no pid file yet) leaves the
 * generation unapplied, so the next read applies and reloads again.
 */
export function applyIdentities(state: string, gen: number, ids: Identity[], reload: () => void): void {
  writeIdentities(state, ids);
  writeAuth(state);
  reload();
  writeGen(appliedPath(state), gen);
}

/** The truth host's repair: auth.conf rendered from identities.json again if a crash left it behind; true when it changed. */
export function renderAuthIfStale(state: string): boolean {
  const f = join(trustDir(state), 'auth.conf');
  const text = renderAuth(identities(state));
  let old = '';
  try { old = readFileSync(f, 'utf8'); } catch { /* none yet */ }
  if (old === text) return false;
  writeSecret(f, text);
  return true;
}

/** The cluster root's signer (root.seed): it signs the identities' record, which every host checks with the root's public key. */
export function rootSigner(state: string): Signer {
  return signer(rootSeed(state));
}

/** Tells the running nats-server to reread its config (SIGHUP through its pid file). */
export function reloadServer(state: string): void {
  const f = join(trustDir(state), 'nats-server.pid');
  if (!existsSync(f)) throw new TrustError(`no nats-server pid file at ${f}: is the cluster up?`);
  const pid = Number(readFileSync(f, 'utf8').trim());
  if (!Number.isSafeInteger(pid) || pid <= 1) throw new TrustError(`bad pid in ${f}`);
  process.kill(pid, 'SIGHUP');
}

function writeIdentities(state: string, ids: Identity[]): void {
  writeSecret(join(trustDir(state), 'identities.json'), JSON.stringify(ids, null, 2));
}

function writeAuth(state: string): void {
  writeSecret(join(trustDir(state), 'auth.conf'), renderAuth(identities(state)));
}

/** Atomic write, owner-only. */
function writeSecret(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}

const runOpenssl = (t: string, args: string[]): void => {
  const r = spawnSync('openssl', args, { cwd: t, encoding: 'utf8' });
  if (r.error) throw new TrustError(`openssl: ${r.error.message} (ops/setup installs it)`);
  if (r.status !== 0) throw new TrustError(`openssl ${args[0]}: ${r.stderr.trim().split('\n').pop()}`);
};
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCerts(t: string, sans: string[]): void {
  runOpenssl(t, ['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '3650', '-subj', '/CN=swarmlite cluster CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  chmodSync(join(t, 'ca.key'), 0o600);
  makeServerCert(t, sans);
}

/** The addresses the server certificate names (trust/server.sans, one a line). */
function certSans(t: string): string[] {
  const f = join(t, 'server.sans');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : ['127.0.0.1', 'localhost'];
}

/**
 * The servers' certificate, signed by the CA: for clients (serverAuth) and, in a cluster,
 * for the routes between servers, where each end shows it to the other (clientAuth).
 */
function makeServerCert(t: string, sans: string[]): void {
  const all = [...new Set([...sans, 'localhost'])];
  const san = all.map((a) => (/^[0-9.]+$/.test(a) ? `IP:${a}` : `DNS:${a}`)).join(',');
  runOpenssl(t, ['req', ...EC, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=swarmlite server']);
  writeFileSync(join(t, 'server.ext'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  runOpenssl(t, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '3650', '-extfile', 'server.ext']);
  chmodSync(join(t, 'server.key'), 0o600);
  rmSync(join(t, 'server.csr'), { force: true });
  writeFileSync(join(t, 'server.sans'), `${all.join('\n')}\n`);
}

export function readCreds(file: string, cwd?: string): Creds {
  let c: Creds;
  try { c = JSON.parse(readFileSync(cwd === undefined ? file : resolve(cwd, file), 'utf8')) as Creds; } catch (err) {
    throw new TrustError(`cannot read credentials ${file}: ${(err as Error).message}`);
  }
  if (typeof c?.seed !== 'string' || typeof c.name !== 'string' || typeof c.url !== 'string') throw new TrustError(`${file} is not a swarmlite credentials file`);
  return c;
}

/**
 * Where tsctl's credentials are: --creds, SWARMLITE_CREDS, ~/.config/swarmlite/creds,
 * then the default cluster's admin creds (ops/up on this host wrote them).
 */
export function findCreds(flag?: string, env = process.env, cwd?: string): string | undefined {
  const c = [flag, env.SWARMLITE_CREDS, join(env.HOME ?? homedir(), '.config/swarmlite/creds'), credsPath('/var/lib/swarmlite', 'admin')];
  return c.find((f) => f !== undefined && f !== '' && existsSync(cwd === undefined ? f : resolve(cwd, f)));
}

/**
 * For the long-lived processes: a server that went away without closing the connection (its
 * host cut off) is noticed in 2-3 s (a ping every second, stale with 2 unanswered; nats.js's
 * default is 4 minutes), and the client is on another server of the cluster within ~0.3 s of
 * that (nats.js waits 2-3 s before dialling a server it dialled last, over TLS). Not faster: a
 * server busy for a second under load (a consumer's creation blocks it for seconds at load 20)
 * would cost a reconnect. An agent on a host with a server uses that one (longLivedOptions), so
 * only an agent of a host without a server can lose its server to another host's cut.
 */
export const LIVENESS = { pingInterval: 1000, maxPingOut: 2, reconnectTimeWait: 250, reconnectJitter: 50, reconnectJitterTLS: 100 } as const;

/** This machine's addresses (in this process's network namespace) and names. */
export function localNames(): Set<string> {
  const out = new Set<string>(['localhost', hostname().toLowerCase()]);
  for (const l of Object.values(networkInterfaces())) for (const a of l ?? []) out.add(a.address.toLowerCase());
  return out;
}

/** A server URL's host, lower case, without brackets ("" when it does not parse). Pure. */
export function hostOf(u: string): string {
  try { return new URL(u.includes('://') ? u : `nats://${u}`).hostname.replace(/^\[|\]$/g, '').toLowerCase(); } catch { return ''; }
}

/** The servers of `servers` at one of this host's addresses (`local`). Pure. */
export function ownUrls(servers: readonly string[], local: ReadonlySet<string>): string[] {
  return servers.filter((u) => local.has(hostOf(u)));
}

/**
 * The order a long-lived process tries a cluster's servers in: this host's own server first
 * (its connection then shares its host's fate: a cut of another host never takes it), the
 * others shuffled (the hosts without a server spread over the cluster). Pure, given `local`
 * and `random`. Used with noRandomize, so nats.js keeps this order (it rotates through it on a loss).
 */
export function serverOrder(servers: readonly string[], local: ReadonlySet<string>, random: () => number = Math.random): string[] {
  const mine = ownUrls(servers, local);
  const rest = servers.filter((u) => !local.has(hostOf(u)));
  for (let i = rest.length - 1; i > 0; i--) { const j = Math.floor(random() * (i + 1)); [rest[i], rest[j]] = [rest[j]!, rest[i]!]; }
  return [...mine, ...rest];
}

/** nats.js options for a long-lived process (agent, controller) of identity `c`: its own host's server first, LIVENESS. */
export function longLivedOptions(c: Creds, url?: string): ConnectionOptions {
  const o = connectOptions(c, url);
  const servers = Array.isArray(o.servers) ? o.servers : o.servers ? [o.servers] : [];
  return { ...o, servers: serverOrder(servers, localNames()), noRandomize: true, maxReconnectAttempts: -1, ...LIVENESS, timeout: 2000 };
}

/**
 * connect() for a long-lived process. Its 2 s dial limit is for failover; a first dial can
 * take longer where nothing is wrong: in the cgroup v2 lane's emulated VM a TLS handshake takes
 * ~1 s alone and over 2 s while the agent, the controller and its reader thread all start, and
 * the controller exited "TIMEOUT" there. A first dial that times out or is refused (its server
 * still starting) is tried again for up to `ms`, saying so every ~10 s; anything else
 * (credentials, a certificate) ends it at once.
 */
export async function dialLongLived(o: ConnectionOptions, who: string, ms = 60_000, log: (l: string) => void = (l) => console.error(l)): Promise<NatsConnection> {
  const t0 = Date.now();
  for (let k = 0, said = 0; ; k++) {
    try { return await connect(o); } catch (err) {
      const code = (err as { code?: string }).code;
      if ((code !== 'TIMEOUT' && code !== 'CONNECTION_REFUSED') || Date.now() - t0 > ms) throw err;
      if (Date.now() - said >= 10_000) { said = Date.now(); log(`${who}: no connection to ${[o.servers].flat().join(',')} yet (${code}); trying again for up to ${Math.round((ms - (Date.now() - t0)) / 1000)} s`); }
      await new Promise((r) => setTimeout(r, Math.min(2000, 250 * 2 ** Math.min(k, 3)) + Math.random() * 100));
    }
  }
}

/**
 * Says in the process's log when its connection drops and where it comes back (a host or
 * server loss is read from these lines: which process lost its server, and for how long).
 */
export function logConnection(nc: NatsConnection, who: string): void {
  let since = 0;
  void (async () => {
    for await (const st of nc.status()) {
      if (st.type === 'disconnect') { since = Date.now(); console.error(`${who}: ${new Date().toISOString()} lost its server ${String(st.data)}`); }
      else if (st.type === 'reconnect') console.error(`${who}: ${new Date().toISOString()} on ${nc.info?.server_name ?? String(st.data)} again${since ? ` after ${Date.now() - since} ms` : ''}`);
      else if (st.type === 'staleConnection') console.error(`${who}: ${new Date().toISOString()} its server stopped answering pings`);
    }
  })().catch(() => undefined);
}

/** nats.js options for an identity: its nkey, the cluster's CA, its own inbox prefix. */
export function connectOptions(c: Creds, url?: string): ConnectionOptions {
  return {
    // several servers (a cluster): "tls://a:4222,tls://b:4222", the client fails over between them
    servers: (url ?? c.url).split(',').map((u) => u.trim()).filter(Boolean),
    authenticator: c.nkey ? nonceSigner(c.nkey, c.seed) : nkeyAuthenticator(new TextEncoder().encode(c.seed)),
    tls: { caFile: c.ca },
    inboxPrefix: inboxPrefix(c.name),
  };
}

/**
 * nats.js's nkey challenge answer, signed with node:crypto: `sig` is base64url of the nonce's
 * signature. The key is imported as a JWK (the raw seed and public key): OpenSSL's PKCS#8
 * decoding, which keyOf uses, costs a short-lived tsctl ~1.3 ms more CPU on its first use.
 */
function nonceSigner(nkey: string, seed: string): () => { nkey: string; sig: string } {
  let priv: KeyObject | undefined;
  return ((nonce?: string) => {
    priv ??= nkeyPrivate(nkey, seed);
    const sig = nonce ? edSign(null, Buffer.from(nonce), priv).toString('base64url') : '';
    return { nkey, sig };
  }) as () => { nkey: string; sig: string };
}

/** An nkey identity's private key for node:crypto, from its seed and public key (U…: a prefix byte, 32 key bytes, a CRC16). */
export function nkeyPrivate(nkey: string, seed: string): KeyObject {
  if (!/^U[A-Z2-7]{55}$/.test(nkey)) throw new TrustError('the credentials\' key is not an nkey user key');
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64(rawSeed(seed)), x: b64(base32(nkey).subarray(1, 33)) }, format: 'jwk' });
}

const TOKEN_PREFIX = 'SWLJOIN1.';
export const JOINER_RE = /^join-[0-9a-f]{12}$/;
/** A join token lives this long unless `tsctl node token --ttl` says otherwise. */
export const DEFAULT_JOIN_TTL_MS = 24 * 3_600_000;

/**
 * A one-time join token (like `docker swarm join`'s): a fresh identity allowed only
 * `api.<it>.join`, with the url, the cluster's CA and its end of life, in one string. The
 * controller turns its one use into the new node's credentials and removes it.
 */
export function makeJoinToken(state: string, ttlMs = DEFAULT_JOIN_TTL_MS, now = Date.now()): { name: string; token: string; expires: number } {
  const name = `join-${randomBytes(6).toString('hex')}`;
  const expires = now + ttlMs;
  const c = readCreds(addIdentity(state, { name, kind: 'joiner', expires }));
  const ca = readFileSync(c.ca, 'utf8');
  return { name, expires, token: TOKEN_PREFIX + Buffer.from(JSON.stringify({ url: c.url, name, seed: c.seed, nkey: c.nkey, root: c.root, ca, exp: expires })).toString('base64url') };
}

export function parseJoinToken(token: string): { creds: Omit<Creds, 'ca'>; ca: string; expires?: number } {
  try {
    if (!token.startsWith(TOKEN_PREFIX)) throw new Error('not a swarmlite join token');
    const t = JSON.parse(Buffer.from(token.slice(TOKEN_PREFIX.length), 'base64url').toString()) as { url: string; name: string; seed: string; nkey: string; root: string; ca: string; exp?: number };
    if (!JOINER_RE.test(t.name) || typeof t.seed !== 'string' || typeof t.ca !== 'string' || !t.ca.includes('BEGIN CERTIFICATE')) throw new Error('malformed');
    if (t.exp !== undefined && !Number.isSafeInteger(t.exp)) throw new Error('malformed expiry');
    return { creds: { name: t.name, kind: 'joiner', seed: t.seed, nkey: t.nkey, url: t.url, root: t.root }, ca: t.ca, ...(t.exp !== undefined ? { expires: t.exp } : {}) };
  } catch (err) {
    throw new TrustError(`invalid join token: ${(err as Error).message}`);
  }
}

/** Why a join token cannot be used now (the controller's check), or undefined when it can. Pure. */
export function joinRefusal(ids: Identity[], caller: string, now: number): string | undefined {
  const j = ids.find((i) => i.name === caller && i.kind === 'joiner');
  if (!j) return 'this join token was used or revoked (tsctl node token makes a new one)';
  if (j.expires !== undefined && j.expires <= now) return `this join token expired at ${new Date(j.expires).toISOString()} (tsctl node token makes a new one)`;
  return undefined;
}

/**
 * A join token's one use: in one write of identities.json the token's identity goes and the
 * node's comes, so a crash anywhere leaves the token either unused or used, never both; a
 * restarted controller finds it gone. Returns the node's credentials file.
 */
export function redeemJoinToken(state: string, caller: string, node: string, now = Date.now()): string {
  const ids = identities(state);
  const why = joinRefusal(ids, caller, now);
  if (why) throw new TrustError(why);
  if (ids.some((i) => i.name === agentIdentity(node))) throw new TrustError(`node ${node} exists already`);
  return addIdentity(state, { name: agentIdentity(node), kind: 'agent', node }, undefined, true, caller);
}

/** Removes the join tokens past their end of life; true when any went (the server must reload). */
export function pruneJoinTokens(state: string, now = Date.now()): boolean {
  const ids = identities(state);
  const keep = ids.filter((i) => !(i.kind === 'joiner' && i.expires !== undefined && i.expires <= now));
  if (keep.length === ids.length) return false;
  writeIdentities(state, keep);
  for (const i of ids) if (!keep.includes(i)) rmSync(credsPath(state, i.name), { force: true });
  writeAuth(state);
  return true;
}

/** Writes credentials on a joining host, pointing at its own copy of the CA. */
export function writeJoinedCreds(state: string, credsJson: string, ca: string): string {
  const c = JSON.parse(credsJson) as Creds;
  const t = trustDir(state);
  mkdirSync(join(t, 'creds'), { recursive: true, mode: 0o700 });
  writeFileSync(join(t, 'ca.pem'), ca);
  const p = credsPath(state, c.name);
  writeSecret(p, JSON.stringify({ ...c, ca: join(t, 'ca.pem') }, null, 2));
  return p;
}
