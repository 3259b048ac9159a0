// The warm tsctl: what ssh's ControlMaster/ControlPersist is to ssh, for `tsctl run` and
// `tsctl image pull`. A per-user process that keeps its authenticated cluster connections (one
// per credentials and url) and serves later such calls over a unix socket, so a call costs node's start and
// the cluster's work, not tsctl's load and a TLS + nkey connect (bin/tsctl.cjs is the client;
// it starts this process when it found none, and falls back to running the call itself
// whenever this one is missing, stale or declines).
//
// Who asks: the socket is in a 0700 directory of the user's own (checked here and by the
// client), so only that uid (and root) can reach it; each call resolves its credentials from
// its own flags, environment and directory exactly as a tsctl process would, and is served on
// a connection made with those credentials alone: the controller sees the same user on the same
// subject as from a direct call. It exits after an idle time (TSCTL_WARM_IDLE seconds).
//
// The protocol, one JSON object a line each way:
//   client: {v, argv, env, cwd, tty: [stdout, stderr]}, then {sig: "SIGINT" | "SIGTERM"} lines
//   warm:   {direct: true} (only as its first line: run it yourself), {run: true} (the command
//           started: forward signals from now on), {o: base64} / {e: base64}
//           (stdout / stderr), {kill: SIGNAL} (die of it, as tsctl would have), {exit: code} last
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { lstatSync, unlinkSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { NatsConnection } from 'nats';
import type { Creds } from '../shared/nats/trust.js';
import { dial } from './client.js';
import { asCall, type Call, type Io, type Writer } from './session.js';

export const WARM_PROTOCOL = 1;
/** The largest first line a client may send (its argv and environment). */
const REQUEST_MAX = 1 << 20;
/** A client that sends no complete request within this is dropped. */
const REQUEST_MS = 5000;

export interface WarmRequest { v: number; argv: string[]; env: Record<string, string>; cwd: string; tty: [boolean, boolean] }

/** The request a client's first line holds, or why not (junk is refused, never half-used). */
export function parseRequest(line: string): WarmRequest | string {
  let r: unknown;
  try { r = JSON.parse(line); } catch { return 'not JSON'; }
  if (typeof r !== 'object' || r === null) return 'not an object';
  const q = r as Partial<WarmRequest>;
  if (q.v !== WARM_PROTOCOL) return `protocol ${String(q.v)}, not ${WARM_PROTOCOL}`;
  if (!Array.isArray(q.argv) || q.argv.length > 10000 || !q.argv.every((a) => typeof a === 'string')) return 'argv is not a list of strings';
  if (typeof q.env !== 'object' || q.env === null || Array.isArray(q.env) || !Object.values(q.env).every((v) => typeof v === 'string')) return 'env is not an object of strings';
  if (typeof q.cwd !== 'string' || !isAbsolute(q.cwd)) return 'cwd is not an absolute path';
  if (!Array.isArray(q.tty) || q.tty.length !== 2 || !q.tty.every((t) => typeof t === 'boolean')) return 'tty is not two booleans';
  return { v: q.v, argv: q.argv, env: { ...q.env }, cwd: q.cwd, tty: [q.tty[0]!, q.tty[1]!] };
}

/**
 * Whether `dir` may hold the socket: a directory (not a link) of this uid's that no one else can
 * enter, in one no one else can swap it out of (this uid's or root's, writable by no one else
 * unless sticky). bin/tsctl.cjs checks the same before it sends anything.
 */
export function privateDir(dir: string): boolean {
  try {
    const st = lstatSync(dir), up = lstatSync(dirname(dir)), uid = process.getuid!();
    return st.isDirectory() && st.uid === uid && (st.mode & 0o077) === 0 &&
      up.isDirectory() && (up.uid === uid || up.uid === 0) && ((up.mode & 0o022) === 0 || (up.mode & 0o1000) !== 0);
  } catch { return false; }
}

/**
 * What the warm process does with one call, inside it (session.ts io() is the client's): runs
 * tsctl on its argv, and as its command starts calls `take(true)` (the client then forwards its
 * signals) or, before writing anything, `take(false)` (the client then runs the call itself).
 */
export type Serve = (argv: string[], take: (served: boolean) => void) => Promise<void>;

/**
 * Serves calls on `sock` until idle for `idleMs`; resolves once listening (false: another
 * warm process already serves there, or the directory is not private).
 */
export async function serveWarm(sock: string, idleMs: number, serve: Serve, dir: string): Promise<{ server: Server; stop: () => void } | false> {
  if (!privateDir(dir)) return false;
  if (await alive(sock)) return false;
  try { unlinkSync(sock); } catch { /* none: the usual case */ }
  const conns = new Map<string, Promise<NatsConnection>>();
  let active = 0;
  let idle: NodeJS.Timeout | undefined;
  const server = createServer({ allowHalfOpen: false });
  let ino: number | undefined;
  const stop = () => {
    clearTimeout(idle);
    server.close();
    // only the socket this process made: a newer warm process may have replaced it
    try { if (lstatSync(sock).ino === ino) unlinkSync(sock); } catch { /* gone */ }
    for (const c of conns.values()) void c.then((n) => n.close(), () => undefined);
    conns.clear();
  };
  const rest = () => { clearTimeout(idle); if (active === 0) idle = setTimeout(() => { stop(); process.exit(0); }, idleMs); };
  // one connection per credentials and url, shared by the calls that name both; a closed one is forgotten
  const shared = async (url: string | undefined, creds: Creds | null): Promise<NatsConnection> => {
    const key = JSON.stringify([url ?? null, creds]);
    const old = conns.get(key);
    if (old) {
      const n = await old.catch(() => undefined);
      if (n && !n.isClosed() && await answers(n)) return n;
      void n?.close().catch(() => undefined);
      const now = conns.get(key);
      if (now !== old && now) return now; // another call dialled already
      conns.delete(key);
    }
    const p = dial(url, creds);
    conns.set(key, p);
    p.then((n) => { void n.closed().then(() => { if (conns.get(key) === p) conns.delete(key); }); }, () => { if (conns.get(key) === p) conns.delete(key); });
    return p;
  };
  // a call's work after its answer (a pull's fill) keeps the process up as a call does
  const hold = (work: Promise<unknown>) => {
    active++;
    clearTimeout(idle);
    void work.catch(() => undefined).finally(() => { active--; rest(); });
  };
  server.on('connection', (s) => {
    active++;
    clearTimeout(idle);
    let done = false;
    const finish = () => { if (!done) { done = true; active--; rest(); } };
    s.on('close', finish);
    handle(s, serve, shared, hold).catch(() => s.destroy()).finally(finish);
  });
  const old = process.umask(0o177); // the socket 0600 from its creation: the directory already keeps others out
  try {
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(sock, () => { server.off('error', reject); resolve(); }); });
  } catch { return false; } finally { process.umask(old); }
  server.on('error', () => undefined);
  try { ino = lstatSync(sock).ino; } catch { /* removed at once: the idle exit still comes */ }
  rest();
  return { server, stop };
}

/**
 * Whether a connection's server answers a PING within CHECK_MS, asked before each call: a server
 * gone silent (its host cut off, its process stopped) sends no close, and a call on that
 * connection would wait out its whole timeout where tsctl in its own process dials afresh.
 */
function answers(n: NatsConnection): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), CHECK_MS);
    n.flush().then(() => { clearTimeout(t); resolve(true); }, () => { clearTimeout(t); resolve(false); });
  });
}
const CHECK_MS = 500;

/** Whether a process answers on `sock` (a file left by a dead one refuses the connect). */
function alive(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(sock);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function handle(s: Socket, serve: Serve, shared: (url: string | undefined, creds: Creds | null) => Promise<NatsConnection>, hold: (work: Promise<unknown>) => void): Promise<void> {
  s.on('error', () => undefined);
  const lines = lineReader(s);
  const timer = setTimeout(() => s.destroy(), REQUEST_MS);
  const first = await lines.next();
  clearTimeout(timer);
  if (first === undefined) { s.destroy(); return; }
  const req = parseRequest(first);
  if (typeof req === 'string') { s.destroy(); return; }
  let ended = false; // the call is over for the client: it exited, or it went away
  let started = false;
  let declined = false;
  const send = (frame: object, end = false) => {
    if (ended || s.destroyed) return;
    started = true;
    const line = `${JSON.stringify(frame)}\n`;
    if (end) { ended = true; s.end(line); } else s.write(line);
  };
  const writer = (key: 'o' | 'e', isTTY: boolean): Writer => ({
    write(data, cb) {
      if (data.length) send({ [key]: Buffer.from(data).toString('base64') });
      cb?.();
      return true;
    },
    isTTY,
    // the exit frame ends the socket, which writes all before it first: nothing to wait for here
    writableLength: 0,
  });
  const listeners = new Map<string, ((sig: NodeJS.Signals) => void)[]>();
  let exitCode: number | undefined;
  const gone = new AbortController();
  const io: Io = {
    stdout: writer('o', req.tty[0]), stderr: writer('e', req.tty[1]), env: req.env, cwd: req.cwd, gone: gone.signal, background: hold,
    get exitCode() { return exitCode; }, set exitCode(c) { exitCode = c; },
    exit: (code) => send(declined && !started ? { direct: true } : { exit: code }, true),
    onSignal: (sig, f) => { listeners.set(sig, [...(listeners.get(sig) ?? []), f]); },
  };
  const call: Call = {
    io, url: () => req.env.SWARMLITE_NATS, credsFlag: () => undefined,
    // a call whose client is gone asks nothing more of the cluster (as a killed tsctl would not)
    // (a relative CA in the credentials is the client's directory's, as for tsctl in its own process)
    dial: async (url, creds) => {
      const n = await shared(url, creds && { ...creds, ca: resolve(req.cwd, creds.ca) });
      if (ended) throw new Error('the client went away');
      return n;
    },
  };
  s.on('close', () => { ended = true; gone.abort(); });
  // the client's signals: to the call's handlers, as process.on would; one with none kills the client, as it would tsctl
  void (async () => {
    for (let line = await lines.next(); line !== undefined; line = await lines.next()) {
      let sig: unknown;
      try { sig = (JSON.parse(line) as { sig?: unknown }).sig; } catch { s.destroy(); return; }
      if (sig !== 'SIGINT' && sig !== 'SIGTERM') { s.destroy(); return; }
      const fs = listeners.get(sig);
      if (fs?.length) asCall(call, () => { for (const f of fs) f(sig as NodeJS.Signals); });
      else send({ kill: sig }, true);
    }
  })();
  await asCall(call, () => serve(req.argv, (served) => { if (served) send({ run: true }); else declined = true; }));
}

/** A socket's input as lines (at most REQUEST_MAX bytes each: a longer one ends the socket). */
function lineReader(s: Socket): { next: () => Promise<string | undefined> } {
  let buf = '';
  const queue: string[] = [];
  let waiting: ((l: string | undefined) => void) | undefined;
  let closed = false;
  const push = () => {
    if (!waiting) return;
    const w = waiting;
    if (queue.length) { waiting = undefined; w(queue.shift()); } else if (closed) { waiting = undefined; w(undefined); }
  };
  s.setEncoding('utf8');
  s.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) { queue.push(buf.slice(0, i)); buf = buf.slice(i + 1); }
    if (buf.length > REQUEST_MAX) { closed = true; buf = ''; s.destroy(); }
    push();
  });
  s.on('close', () => { closed = true; push(); });
  return { next: () => new Promise((resolve) => { waiting = resolve; push(); }) };
}
