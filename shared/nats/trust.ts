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
import { join } from 'node:path';
import { homedir } from 'node:os';
import { nkeys, nkeyAuthenticator, type ConnectionOptions } from 'nats';
import { randomBytes } from 'node:crypto';
import { IMAGE_BUCKET, STREAM } from '../subjects.js';
import { keyOf, registration, signer, keySubjectToken, type Signer } from '../signing.js';
import { sign as edSign } from 'node:crypto';

export type Role = 'admin' | 'operator' | 'viewer';
export const ROLES: readonly Role[] = ['admin', 'operator', 'viewer'];
/**
 * `superuser` may publish and subscribe anything (no stream administration beyond what
 * that gives): what someone holding the server's own config could do. ops/up never makes
 * one; tests use it to put junk and forgeries into the log that readers must refuse.
 */
export type Kind = 'controller' | 'agent' | 'user' | 'superuser' | 'joiner';

/** One authenticated identity. `name` is one subject token: it names its inbox and, for users, its API subjects. */
export interface Identity { name: string; kind: Kind; role?: Role; node?: string; key: string }

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
export const agentIdentity = (node: string): string => `node-${node}`;
export const inboxPrefix = (name: string): string => `_INBOX_${name}`;

/** Read-only verbs of the controller a viewer may call (shared/api/controller.ts names). */
export const VIEWER_VERBS = ['ps', 'inspect', 'nodes', 'image.ls', 'network.ls', 'network.inspect', 'info'];
/** Controller verbs for admins only. */
export const ADMIN_VERBS = ['node.rm'];
/** Agent verbs every user may call (shared/api/agent.ts). */
const AGENT_VERBS = ['logs', 'stats', 'info'];

const OBJ = `OBJ_${IMAGE_BUCKET}`;
/** The log's anchor (shared/nats/anchor.ts): written by the controller, read by every auditor. */
const ANCHOR = 'KV_swarmlite-anchor';
/** Snapshots for view --at (shared/nats/snapshots.ts): written by the controller, read by everyone. */
const SNAPS = 'OBJ_swarmlite-snapshots';
const snapsWrite = ['$O.swarmlite-snapshots.>', `$JS.API.STREAM.CREATE.${SNAPS}`, `$JS.API.STREAM.UPDATE.${SNAPS}`, `$JS.API.STREAM.PURGE.${SNAPS}`];

/** Reading a stream: info, direct/last-by-subject gets, ephemeral consumers and their pulls. */
const jsRead = (s: string): string[] => [
  `$JS.API.STREAM.INFO.${s}`, `$JS.API.STREAM.MSG.GET.${s}`, `$JS.API.DIRECT.GET.${s}`, `$JS.API.DIRECT.GET.${s}.>`,
  `$JS.API.CONSUMER.CREATE.${s}`, `$JS.API.CONSUMER.CREATE.${s}.>`, `$JS.API.CONSUMER.INFO.${s}.*`,
  `$JS.API.CONSUMER.MSG.NEXT.${s}.*`, `$JS.API.CONSUMER.DELETE.${s}.*`,
];
/** Writing the image store: chunks and metas, the bucket's stream, purging an object's old chunks. */
const objWrite = [`$O.${IMAGE_BUCKET}.>`, `$JS.API.STREAM.CREATE.${OBJ}`, `$JS.API.STREAM.UPDATE.${OBJ}`, `$JS.API.STREAM.PURGE.${OBJ}`];

/** A node's durable consumer: nobody else may create, pull, ack or delete it. */
const durable = (node: string): string[] => {
  const c = `agent-${node}`;
  return [`$JS.API.CONSUMER.CREATE.${STREAM}.${c}`, `$JS.API.CONSUMER.CREATE.${STREAM}.${c}.>`, `$JS.API.CONSUMER.DURABLE.CREATE.${STREAM}.${c}`,
    `$JS.API.CONSUMER.DELETE.${STREAM}.${c}`, `$JS.API.CONSUMER.MSG.NEXT.${STREAM}.${c}`, `$JS.ACK.${STREAM}.${c}.>`];
};

export interface Permissions {
  publish: { allow: string[]; deny?: string[] };
  subscribe: { allow: string[]; deny?: string[] };
  allow_responses?: boolean;
}

/** The grants of one identity, given every identity (a node's durable is denied to all others). Pure. */
export function permissions(id: Identity, all: Identity[]): Permissions {
  const nodes = all.filter((i) => i.kind === 'agent' && i.node).map((i) => i.node!);
  const othersDurables = nodes.filter((n) => n !== id.node).flatMap(durable);
  const inbox = `${inboxPrefix(id.name)}.>`;
  const common = ['$JS.API.INFO', '$JS.API.STREAM.NAMES', ...jsRead(STREAM), ...jsRead(ANCHOR), ...jsRead(SNAPS)];
  switch (id.kind) {
    case 'superuser':
      return { publish: { allow: ['>'] }, subscribe: { allow: ['>'] }, allow_responses: true };
    // a one-time join token: it may only ask the controller to make it a node
    case 'joiner':
      return { publish: { allow: [`api.${id.name}.join`] }, subscribe: { allow: [inbox] } };
    case 'controller':
      return {
        publish: { allow: ['ev.desired.>', 'ev.image.>', 'ev.cluster.>', 'ev.controller', 'ev.keys.controller', ...common,
          `$JS.API.STREAM.CREATE.${STREAM}`, `$JS.API.STREAM.UPDATE.${STREAM}`,
          `$JS.API.STREAM.CREATE.${ANCHOR}`, '$KV.swarmlite-anchor.>', ...jsRead(OBJ), ...objWrite, ...snapsWrite, '$JS.FC.>'], deny: othersDurables },
        subscribe: { allow: ['api.*.>', inbox] },
        allow_responses: true,
      };
    case 'agent': {
      const n = id.node!;
      return {
        publish: { allow: [`ev.state.${n}.>`, `ev.node.${n}`, `ev.keys.${keySubjectToken(`node:${n}`)}`, `logs.${n}.>`, ...common, ...durable(n), ...jsRead(OBJ), '$JS.FC.>'], deny: othersDurables },
        subscribe: { allow: [`agent.${n}.>`, inbox] },
        allow_responses: true,
      };
    }
    case 'user': {
      const api = id.role === 'viewer' ? VIEWER_VERBS.map((v) => `api.${id.name}.${v}`) : [`api.${id.name}.>`];
      const write = id.role === 'viewer' ? [] : [...jsRead(OBJ), ...objWrite, '$JS.FC.>'];
      // stream administration (delete, purge, edit, message delete) is the admin's alone
      const admin = id.role === 'admin' ? ['$JS.API.>'] : [];
      return {
        publish: { allow: [...api, ...AGENT_VERBS.map((v) => `agent.*.${v}`), ...common, ...write, ...admin],
          deny: id.role === 'admin' ? [] : [...ADMIN_VERBS.map((v) => `api.${id.name}.${v}`), ...nodes.flatMap(durable)] },
        subscribe: { allow: [inbox, 'logs.>', 'ev.state.>'] },
      };
    }
  }
}

/** The `authorization` block for every identity. Pure; JSON is valid nats-server config. */
export function renderAuth(ids: Identity[]): string {
  const users = ids.map((i) => ({ nkey: i.key, permissions: permissions(i, ids) }));
  return `# generated from identities.json by swarmlite (shared/nats/trust.ts); edit with tsctl user\nauthorization {\n  users = ${JSON.stringify(users, null, 2)}\n}\n`;
}

export interface ServerOptions { port: number; stateDir: string }

/** nats-server's config: loopback only, TLS, no anonymous access, JetStream. Pure. */
export function renderServerConf(o: ServerOptions): string {
  const t = trustDir(o.stateDir);
  return [
    `listen: 127.0.0.1:${o.port}`,
    `pid_file: "${join(t, 'nats-server.pid')}"`,
    `tls { cert_file: "${join(t, 'server.pem')}", key_file: "${join(t, 'server.key')}", timeout: 3 }`,
    'include "trust/auth.conf"', // relative to this file (nats-server resolves includes so)
    `jetstream { store_dir: "${join(o.stateDir, 'nats')}" }`,
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
export function initTrust(state: string, o: { port: number; node?: string }): void {
  const t = trustDir(state);
  mkdirSync(join(t, 'creds'), { recursive: true, mode: 0o700 });
  chmodSync(t, 0o700);
  if (!existsSync(join(t, 'server.pem'))) makeCerts(t);
  // the root signs key registrations only; it never connects to anything
  if (!existsSync(join(t, 'root.seed'))) writeSecret(join(t, 'root.seed'), randomBytes(32).toString('hex'));
  const url = `tls://127.0.0.1:${o.port}`;
  const ids = identities(state);
  const want: Omit<Identity, 'key'>[] = [{ name: 'controller', kind: 'controller' }, { name: 'admin', kind: 'user', role: 'admin' }, { name: CONTROLLER_READER, kind: 'user', role: 'viewer' }];
  if (o.node) want.push({ name: agentIdentity(o.node), kind: 'agent', node: o.node });
  for (const w of want) if (!ids.some((i) => i.name === w.name) || !existsSync(credsPath(state, w.name))) addIdentity(state, w, url, false);
  // the url is the port of this start (ops/up --nats-port may change it)
  for (const i of identities(state)) {
    const p = credsPath(state, i.name);
    if (existsSync(p)) { const c = readCreds(p); if (c.url !== url) writeSecret(p, JSON.stringify({ ...c, url }, null, 2)); }
  }
  writeAuth(state);
  writeFileSync(join(state, 'nats.conf'), renderServerConf({ port: o.port, stateDir: state }));
}

/**
 * The controller reads the log through a viewer identity of its own: a connection allowed to
 * answer requests (allow_responses) makes nats-server track the reply subject of every message
 * it receives, JetStream's included, which made a replay ~10x slower and worse as it grew.
 */
export const CONTROLLER_READER = 'controller-reader';

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
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const out: number[] = [];
  let bits = 0, acc = 0;
  for (const ch of seed) {
    const v = A.indexOf(ch);
    if (v < 0) throw new TrustError('the credentials\' seed is not an nkey seed');
    acc = (acc << 5) | v; bits += 5;
    if (bits >= 8) { out.push((acc >> (bits - 8)) & 0xff); bits -= 8; }
  }
  if (out.length !== 36) throw new TrustError('the credentials\' seed is not an nkey seed');
  return Uint8Array.from(out.slice(2, 34));
}

/** An event source's signer and the registration to append before its first signed event. */
export function signerOf(c: Creds): { signer: Signer; reg: NonNullable<Creds['reg']> } {
  if (!c.reg) throw new TrustError(`credentials of "${c.name}" carry no key registration (not an event source)`);
  const s = signer(rawSeed(c.seed));
  if (s.pub !== c.reg.key) throw new TrustError(`credentials of "${c.name}": the registered key is not this seed's`);
  return { signer: s, reg: c.reg };
}

/** Adds (or re-keys) an identity, writes its creds file and returns its path. `apply` re-renders auth.conf. */
export function addIdentity(state: string, w: Omit<Identity, 'key'>, url?: string, apply = true): string {
  if (!USER_RE.test(w.name)) throw new TrustError(`invalid name "${w.name}": a lower-case letter, then letters, digits, _ or - (at most 32)`);
  const kp = nkeys.createUser();
  const id: Identity = { ...w, key: kp.getPublicKey() };
  const ids = identities(state).filter((i) => i.name !== w.name);
  writeIdentities(state, [...ids, id]);
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
  writeSecret(p, JSON.stringify(creds, null, 2));
  if (apply) writeAuth(state);
  return p;
}

/** Removes an identity: after the server reloads, its connections are closed and it cannot connect again. */
export function removeIdentity(state: string, name: string): boolean {
  const ids = identities(state);
  if (!ids.some((i) => i.name === name)) return false;
  writeIdentities(state, ids.filter((i) => i.name !== name));
  rmSync(credsPath(state, name), { force: true });
  writeAuth(state);
  return true;
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

function makeCerts(t: string): void {
  const run = (args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: t, encoding: 'utf8' });
    if (r.error) throw new TrustError(`openssl: ${r.error.message} (ops/setup installs it)`);
    if (r.status !== 0) throw new TrustError(`openssl ${args[0]}: ${r.stderr.trim().split('\n').pop()}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '3650', '-subj', '/CN=swarmlite cluster CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(join(t, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '3650', '-extfile', 'server.ext']);
  for (const f of ['ca.key', 'server.key']) chmodSync(join(t, f), 0o600);
  rmSync(join(t, 'server.csr'), { force: true });
}

export function readCreds(file: string): Creds {
  let c: Creds;
  try { c = JSON.parse(readFileSync(file, 'utf8')) as Creds; } catch (err) {
    throw new TrustError(`cannot read credentials ${file}: ${(err as Error).message}`);
  }
  if (typeof c?.seed !== 'string' || typeof c.name !== 'string' || typeof c.url !== 'string') throw new TrustError(`${file} is not a swarmlite credentials file`);
  return c;
}

/**
 * Where tsctl's credentials are: --creds, SWARMLITE_CREDS, ~/.config/swarmlite/creds,
 * then the default cluster's admin creds (ops/up on this host wrote them).
 */
export function findCreds(flag?: string, env = process.env): string | undefined {
  const c = [flag, env.SWARMLITE_CREDS, join(env.HOME ?? homedir(), '.config/swarmlite/creds'), credsPath('/var/lib/swarmlite', 'admin')];
  return c.find((f) => f !== undefined && f !== '' && existsSync(f));
}

/** nats.js options for an identity: its nkey, the cluster's CA, its own inbox prefix. */
export function connectOptions(c: Creds, url?: string): ConnectionOptions {
  return {
    servers: url ?? c.url,
    authenticator: c.nkey ? nonceSigner(c.nkey, c.seed) : nkeyAuthenticator(new TextEncoder().encode(c.seed)),
    tls: { caFile: c.ca },
    inboxPrefix: inboxPrefix(c.name),
  };
}

/** nats.js's nkey challenge answer, signed with node:crypto: `sig` is base64url of the nonce's signature. */
function nonceSigner(nkey: string, seed: string): () => { nkey: string; sig: string } {
  let priv: ReturnType<typeof keyOf>['priv'] | undefined;
  return ((nonce?: string) => {
    priv ??= keyOf(rawSeed(seed)).priv;
    const sig = nonce ? edSign(null, Buffer.from(nonce), priv).toString('base64url') : '';
    return { nkey, sig };
  }) as () => { nkey: string; sig: string };
}

const TOKEN_PREFIX = 'SWLJOIN1.';
export const JOINER_RE = /^join-[0-9a-f]{12}$/;

/**
 * A one-time join token (like `docker swarm join`'s): a fresh identity allowed only
 * `api.<it>.join`, with the url and the cluster's CA, in one string. The controller
 * turns its one use into the new node's credentials and removes it.
 */
export function makeJoinToken(state: string): { name: string; token: string } {
  const name = `join-${randomBytes(6).toString('hex')}`;
  const c = readCreds(addIdentity(state, { name, kind: 'joiner' }));
  const ca = readFileSync(c.ca, 'utf8');
  return { name, token: TOKEN_PREFIX + Buffer.from(JSON.stringify({ url: c.url, name, seed: c.seed, nkey: c.nkey, root: c.root, ca })).toString('base64url') };
}

export function parseJoinToken(token: string): { creds: Omit<Creds, 'ca'>; ca: string } {
  try {
    if (!token.startsWith(TOKEN_PREFIX)) throw new Error('not a swarmlite join token');
    const t = JSON.parse(Buffer.from(token.slice(TOKEN_PREFIX.length), 'base64url').toString()) as { url: string; name: string; seed: string; nkey: string; root: string; ca: string };
    if (!JOINER_RE.test(t.name) || typeof t.seed !== 'string' || typeof t.ca !== 'string' || !t.ca.includes('BEGIN CERTIFICATE')) throw new Error('malformed');
    return { creds: { name: t.name, kind: 'joiner', seed: t.seed, nkey: t.nkey, url: t.url, root: t.root }, ca: t.ca };
  } catch (err) {
    throw new TrustError(`invalid join token: ${(err as Error).message}`);
  }
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
