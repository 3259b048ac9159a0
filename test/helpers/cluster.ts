// A whole cluster for one integration test file: its own nats-server on a free port,
// controller and agent processes, a temp state dir and a unique node name; stop()
// removes everything they made, whatever state the test left.
import { readersFor } from '../../shared/nats/readers.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { metaGroup, type Jsz } from '../../shared/nats/meta-group.js';
import { freeSubnet } from './subnets.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from 'nats';
import { addIdentity, connectOptions, credsPath, initTrust, readCreds, reloadServer, removeIdentity, agentIdentity, type Kind, type Role } from '../../shared/nats/trust.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/**
 * Multiplies every wait of these helpers: the cgroup v2 lane runs the same files in an
 * emulated VM (ops/vm-lane sets SWARMLITE_TEST_SLOW), where a node process starts ~10x slower.
 */
export const SLOW = Math.max(1, Number(process.env.SWARMLITE_TEST_SLOW) || 1);
const DIST = join(ROOT, 'dist');

/** Ports this process handed out: a server given one may not be listening on it yet. */
const handedOut = new Set<number>();

/**
 * A TCP port free on 127.0.0.1, never one handed out before in this process, and below the
 * kernel's ephemeral range (32768-60999 by default). A port from bind(0) was the ephemeral
 * range's: the kernel gave the same number to the next bind(0) once the probe had closed (a
 * three-server cluster got one port for a server's clients and its monitor, and that server
 * died "address already in use"), and any outgoing connection could take it before the
 * server bound it.
 */
export async function freePort(): Promise<number> {
  for (let k = 0; ; k++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) { handedOut.add(port); return port; }
    if (k > 200) throw new Error('no free TCP port in 20000-31999 on 127.0.0.1');
  }
}

export interface Result { code: number; stdout: string; stderr: string; ms: number }

export class Cluster {
  readonly url: string;
  readonly node: string;
  private procs: Record<string, ChildProcess> = {};

  private constructor(readonly dir: string, readonly port: number, node: string, readonly subnet?: string) {
    this.url = `nats://127.0.0.1:${port}`;
    this.node = node;
  }

  /** The admin's credentials file (what ops/up gives tsctl on the host). */
  get adminCreds(): string { return credsPath(this.dir, 'admin'); }

  /**
   * A NATS connection as one identity of this cluster (default: the admin). `tamper` is a
   * superuser made on first use: what someone with the server's config could publish.
   */
  async connect(name = 'admin'): Promise<NatsConnection> {
    if (name === 'tamper' && !existsSync(credsPath(this.dir, name))) this.addIdentity(name, 'superuser');
    const creds = readCreds(credsPath(this.dir, name));
    const o = { ...connectOptions(creds, this.url), name: `test-${name}` };
    // a just-added identity is known once the server has reloaded (SIGHUP is asynchronous)
    for (let k = 0; ; k++) {
      // an agent's reads go through the consumers its grants name, as the agent's do
      try { return readersFor(await connect(o), creds); } catch (err) { if (k >= 40) throw err; await sleep(50); }
    }
  }

  /** Adds an identity through the generator and reloads the server; returns its creds file. */
  addIdentity(name: string, kind: Kind, o: { role?: Role; node?: string } = {}): string {
    const f = addIdentity(this.dir, { name, kind, ...o });
    this.reload();
    return f;
  }

  /** Removes an identity and reloads the server (revocation). */
  revoke(name: string): void {
    removeIdentity(this.dir, name);
    this.reload();
  }

  /**
   * SIGHUP, then waits (blocking, at most 10 s) until nats.log says the reload is done. With the
   * reload still under way, a JetStream request went unanswered for its whole timeout (trust, beside
   * 3-4 busy processes: a publish's ack or a consumer's info, 3 runs of 9; 0 of 6 with this wait).
   */
  private reload(): void {
    const log = join(this.dir, 'nats.log');
    const done = () => { try { return readFileSync(log, 'utf8').split('Reloaded server configuration').length - 1; } catch { return 0; } };
    const before = done();
    reloadServer(this.dir);
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (const end = Date.now() + 10_000 * SLOW; done() <= before && Date.now() < end;) Atomics.wait(pause, 0, 0, 10);
  }

  /** More flags for the agent (e.g. --storage-driver vfs). */
  private agentArgs: string[] = [];

  /**
   * A cluster that answers, started at most twice: a start that does not come up in time
   * (CI once saw JetStream answer nothing for 20 s on a fresh server) is torn down and made
   * again with a new port and directory, after printing why and the server's last log lines,
   * so the stall stays visible without failing every test of the file for it.
   */
  static async start(o: { subnet?: string; agentArgs?: string[] } = {}): Promise<Cluster> {
    try { return await Cluster.startOnce(o); } catch (err) {
      console.error(`cluster: the start failed (${(err as Error).message}); starting a new cluster once more`);
      return Cluster.startOnce(o);
    }
  }

  private static async startOnce(o: { subnet?: string; agentArgs?: string[] }): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), 'swl-test-'));
    // a unique default-bridge subnet per cluster: test clusters never share addresses
    const c = new Cluster(dir, await freePort(), `t${randomBytes(3).toString('hex')}`, o.subnet ?? freeSubnet());
    c.agentArgs = o.agentArgs ?? [];
    try {
      // the same keys, certificates, identities and config ops/up makes (shared/nats/trust.ts)
      initTrust(dir, { port: c.port, node: c.node });
      c.procs.nats = spawn('nats-server', ['-c', join(dir, 'nats.conf'), '-l', join(dir, 'nats.log')], { stdio: 'ignore' });
      await c.waitPort();
      c.startController();
      c.startAgent();
      await c.waitJoined();
      return c;
    } catch (err) {
      const log = existsSync(join(dir, 'nats.log')) ? readFileSync(join(dir, 'nats.log'), 'utf8').trim().split('\n').slice(-12) : [];
      const procs = Object.entries(c.procs).map(([k, p]) => `${k} ${p.exitCode === null && p.signalCode === null ? 'running' : `exited ${p.exitCode ?? p.signalCode}`}`).join(', ');
      await c.stop();
      throw new Error(`${(err as Error).message} [${procs}]${log.length ? `\n  nats.log: ${log.join('\n  nats.log: ')}` : ''}`);
    }
  }

  private async waitPort(): Promise<void> {
    const { connect } = await import('node:net');
    const deadline = Date.now() + 10000 * SLOW;
    while (Date.now() < deadline) {
      const ok = await new Promise<boolean>((r) => { const s = connect(this.port, '127.0.0.1', () => { s.destroy(); r(true); }); s.on('error', () => r(false)); });
      if (ok) return;
      await sleep(30);
    }
    throw new Error(`nats-server did not listen on ${this.port}`);
  }

  /** Kills the controller (SIGKILL) and starts it again, waiting until it answers. */
  async restartController(): Promise<void> {
    const p = this.procs.controller;
    if (p && p.exitCode === null) { const gone = new Promise((r) => p.once('exit', r)); p.kill('SIGKILL'); await gone; }
    this.startController();
    await until(async () => (await this.tsctl(['ps'])).code === 0, 10000, 'controller answering');
  }

  /** Starts the controller; `env` adds variables (test hooks). */
  startController(env: Record<string, string> = {}): void {
    this.procs.controller = spawn(process.execPath, [...CONTROLLER_NODE_FLAGS, join(DIST, 'controller/main.js'), '--nats', this.url, '--state-dir', this.dir], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
  }

  /** Starts the agent; `env` adds variables (failpoints, for fault-injection tests). */
  startAgent(env: Record<string, string> = {}): ChildProcess {
    const args = [...AGENT_NODE_FLAGS, join(DIST, 'agent/main.js'), '--nats', this.url, '--state-dir', this.dir, '--node', this.node];
    if (this.subnet) args.push('--subnet', this.subnet);
    args.push(...this.agentArgs);
    // detached: the agent is its own process group, as under ops/up, so killing it
    // cannot reach containers through the test's group
    this.procs.agent = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], detached: true, env: { ...process.env, ...env } });
    return this.procs.agent;
  }

  agent(): ChildProcess { return this.procs.agent; }
  natsServer(): ChildProcess { return this.procs.nats; }

  controller(): ChildProcess { return this.procs.controller; }

  private extraNodes: string[] = [];

  /** A second agent on this machine, as another node of the same cluster. */
  async addNode(node: string, subnet: string): Promise<void> {
    this.addIdentity(agentIdentity(node), 'agent', { node });
    const args = [...AGENT_NODE_FLAGS, join(DIST, 'agent/main.js'), '--nats', this.url, '--state-dir', this.dir, '--node', node, '--subnet', subnet];
    this.procs[`agent-${node}`] = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], detached: true });
    this.extraNodes.push(node);
    await until(async () => (await this.tsctl(['nodes', '--format', 'json'])).stdout.includes(`"id":"${node}"`), 20000, `node ${node} joined`);
  }

  /** Kills the agent with SIGKILL, as a crash would, and waits for it to be gone. */
  async killAgent(): Promise<void> {
    const a = this.procs.agent;
    if (!a || a.exitCode !== null) return;
    const gone = new Promise((r) => a.once('exit', r));
    a.kill('SIGKILL');
    await gone;
  }

  /**
   * Fault injection: the agent restarted armed with `failpoint`, `act` started, and once the
   * agent died there (SIGKILL, or an error saying how it ended) a clean one started; `act`'s result.
   */
  async crashAt<T>(failpoint: string, act: () => Promise<T>, ms = 60000): Promise<T> {
    await this.killAgent();
    const armed = this.startAgent({ SWARMLITE_FAILPOINTS: failpoint });
    await this.waitJoined();
    const result = act();
    await until(() => armed.exitCode !== null || armed.signalCode !== null, ms, `the agent to die at ${failpoint}`);
    if (armed.signalCode !== 'SIGKILL') throw new Error(`the agent armed at ${failpoint} ended with ${armed.signalCode ?? `code ${armed.exitCode}`}, not SIGKILL there`);
    this.startAgent();
    return result;
  }

  async waitJoined(): Promise<void> {
    const deadline = Date.now() + 20000 * SLOW;
    while (Date.now() < deadline) {
      const r = await this.tsctl(['nodes', '--format', 'json']);
      if (r.code === 0 && r.stdout.includes(`"id":"${this.node}"`)) return;
      await sleep(100);
    }
    throw new Error(`agent ${this.node} did not join`);
  }

  tsctl(args: string[], o: { input?: string; timeout?: number; env?: Record<string, string> } = {}): Promise<Result> {
    return runTsctl(args, { ...o, env: { SWARMLITE_NATS: this.url, SWARMLITE_CREDS: this.adminCreds, ...o.env } });
  }

  /** Runs and asserts success, returning stdout. */
  async ok(args: string[]): Promise<string> {
    const r = await this.tsctl(args);
    if (r.code !== 0) throw new Error(`tsctl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  async importBusybox(): Promise<void> {
    // The build forks ~400 times (46 s in the emulated VM of the v2 lane): a run that sets
    // SWARMLITE_TEST_CACHE builds it once there, otherwise each cluster makes its own.
    const cache = process.env.SWARMLITE_TEST_CACHE;
    const tar = join(cache ?? this.dir, 'busybox.tar');
    if (!existsSync(tar)) {
      const tmp = `${tar}.${process.pid}`;
      const b = spawnSync(join(ROOT, 'ops/build-busybox-rootfs'), [tmp], { encoding: 'utf8' });
      if (b.status !== 0) throw new Error(`build-busybox-rootfs: ${b.stderr}`);
      renameSync(tmp, tar);
    }
    await this.ok(['image', 'import', tar, '--name', 'busybox']);
  }

  async stop(): Promise<void> {
    for (const name of [...this.extraNodes.map((n) => `agent-${n}`), 'agent', 'controller', 'nats']) {
      const p = this.procs[name];
      if (!p || p.exitCode !== null || p.signalCode !== null) continue;
      const gone = new Promise((r) => p.once('exit', r));
      p.kill(name === 'nats' ? 'SIGTERM' : 'SIGKILL');
      await Promise.race([gone, sleep(5000)]);
    }
    // containers outlive the agent by design: tear down what it left on this host
    for (const node of [this.node, ...this.extraNodes]) {
      spawnSync(process.execPath, [join(DIST, 'agent/node-teardown.js'), '--state-dir', this.dir, '--node', node], { stdio: 'inherit' });
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs tsctl with `env` added to this process's environment; never throws. */
export function runTsctl(args: string[], o: { input?: string; timeout?: number; env?: Record<string, string> } = {}): Promise<Result> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(ROOT, 'bin/tsctl.cjs'), ...args], { env: { ...process.env, ...o.env } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    if (o.input !== undefined) p.stdin.end(o.input);
    const timer = setTimeout(() => p.kill('SIGKILL'), (o.timeout ?? 60000) * SLOW);
    p.on('close', (code, sig) => { clearTimeout(timer); resolve({ code: code ?? (sig ? 128 : -1), stdout, stderr, ms: performance.now() - t0 }); });
  });
}

/**
 * The agent's V8 flags, as in ops/up: a small young generation, and no optimising
 * compiler (the agent waits on the kernel and the network, not on JS; TurboFan's code
 * and feedback cost ~10 MB of resident memory for no start-time gain, see the bench).
 */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=1', '--no-opt',
  // extra node flags for a bench's agent (e.g. --cpu-prof --cpu-prof-dir=/tmp/p), space-separated
  ...(process.env.SWARMLITE_AGENT_NODE_ARGS ?? '').split(' ').filter(Boolean)];

/**
 * The controller's V8 flags, as in ops/up, ops/fleet and ops/units (written out in each, as the agent's are): the garbage collector on the thread that needs it, no
 * helper threads. A long catch-up keeps both cores busy (the reader thread, the fold, nats-server),
 * and GC helpers then only take turns from them: A/B, 1.2M events from empty, six runs without
 * and five with, taking turns (2026-12-02), ready in 10.14-10.45 s against 10.31-10.78 (medians 10.39, 10.59), the process 14.8 s CPU against 15.0.
 */
export const CONTROLLER_NODE_FLAGS = ['--single-threaded-gc'];

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(f: () => Promise<T | undefined | false> | T | undefined | false, ms = 10000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms * SLOW;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Three servers of one cluster: `url` lists all three (a client fails over), `urls` each alone,
 * `monitors` their monitoring endpoints (/subsz: what a server itself subscribes); server i is `three<i>`.
 */
export interface ThreeServers { url: string; urls: string[]; monitors: string[]; kill: (i: number) => Promise<void>; stop: () => Promise<void>; logs: () => string }

/**
 * Three servers on loopback routing to each other with this cluster's trust (its certificate,
 * its auth.conf, included relative to the config as nats-server reads includes) in `dir`, a
 * Cluster's: an R3 stream and its consumers are raft groups there, whose elections nats-server
 * announces (one server has none).
 */
export async function threeServers(dir: string): Promise<ThreeServers> {
  const ports = await Promise.all([0, 1, 2].map(() => freePort()));
  const routes = await Promise.all([0, 1, 2].map(() => freePort()));
  const monitors = await Promise.all([0, 1, 2].map(() => freePort()));
  const t = join(dir, 'trust');
  const procs: ChildProcess[] = [];
  const tls = `cert_file: "${t}/server.pem", key_file: "${t}/server.key", timeout: 3`;
  const conf = (i: number) => join(dir, `three${i}`, 'nats.conf');
  const start = (i: number) => { procs[i] = spawn('nats-server', ['-c', conf(i), '-l', join(dir, `three${i}/nats.log`)], { stdio: 'ignore' }); };
  for (let i = 0; i < 3; i++) {
    const d = join(dir, `three${i}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(conf(i), [`server_name: "three${i}"`, `listen: 127.0.0.1:${ports[i]}`, `http: 127.0.0.1:${monitors[i]}`, `tls { ${tls} }`, `include "../trust/auth.conf"`,
      `jetstream { store_dir: "${d}/js" }`,
      `cluster { name: "three", listen: "127.0.0.1:${routes[i]}", routes: ${JSON.stringify(routes.map((r) => `nats-route://127.0.0.1:${r}`))}, tls { ${tls}, ca_file: "${t}/ca.pem", verify: true } }`, ''].join('\n'));
    start(i);
  }
  const stop = async () => { for (let i = 0; i < 3; i++) await kill(i); };
  // what the servers said, for a start that does not come up
  const logs = () => [0, 1, 2].map((i) => { try { return readFileSync(join(dir, `three${i}/nats.log`), 'utf8').trim().split('\n').slice(-4).map((l) => `three${i}: ${l}`).join('\n'); } catch { return `three${i}: no log`; } }).join('\n');
  const kill = async (i: number) => {
    const p = procs[i]!;
    if (p.exitCode === null && p.signalCode === null) { const gone = new Promise((r) => p.once('exit', r)); p.kill('SIGKILL'); await gone; }
  };
  const monitorUrls = monitors.map((p) => `http://127.0.0.1:${p}`);
  try {
    await untilFormed(monitorUrls, kill, start);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${logs()}`);
  }
  const urls = ports.map((p) => `tls://127.0.0.1:${p}`);
  return { url: urls.join(','), urls, monitors: monitorUrls, kill, stop, logs };
}

/**
 * Waits until the three servers are one JetStream meta group, restarting a server nats-server
 * left out of it (shared/nats/meta-group.ts; 3 of 160 starts here, 9 of 150 with other work
 * running, staggered starts too): a test that needs three servers is not about that bug.
 */
async function untilFormed(monitors: string[], kill: (i: number) => Promise<void>, start: (i: number) => void): Promise<void> {
  let g: ReturnType<typeof metaGroup> = { members: [], out: [] };
  for (let attempt = 0; attempt < 3; attempt++) {
    const deadline = Date.now() + 8_000 * SLOW;
    while (Date.now() < deadline) {
      g = await metaOf(monitors);
      if (g.members.length === 3) return;
      await sleep(100);
    }
    for (const name of g.out) {
      process.stderr.write(`threeServers: ${name} is not in the JetStream meta group led by ${g.leader} (${g.members.join(', ')}): restarting it\n`);
      const i = Number(name.slice('three'.length));
      await kill(i);
      start(i);
    }
  }
  throw new Error(`the three servers did not form one JetStream meta group (members: ${g.members.join(', ') || 'none'})`);
}

/** What the three monitors say of the meta group (monitor i is three<i>'s: jsz does not name its server). */
async function metaOf(monitors: string[]): Promise<ReturnType<typeof metaGroup>> {
  const all = await Promise.all(monitors.map(async (m, i) => {
    try { return [`three${i}`, await (await fetch(`${m}/jsz`, { signal: AbortSignal.timeout(2000) })).json() as Jsz] as const; } catch { return [`three${i}`, undefined] as const; }
  }));
  return metaGroup(new Map(all));
}
