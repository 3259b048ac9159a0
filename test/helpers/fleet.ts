// A simulated fleet for a multi-host test file, through ops/fleet (the script people use):
// N hosts in their own network namespaces on an underlay bridge, a 3-server NATS cluster,
// one agent per host. A random prefix keeps several fleets (test files) apart; down()
// removes everything it made, whatever state the test left.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, SLOW, runTsctl, sleep, until, type Result } from './cluster.js';

export type Proc = 'agent' | 'nats' | 'controller' | 'all';

export class Fleet {
  readonly env: Record<string, string>;

  private constructor(readonly prefix: string, readonly hosts: number, env: string, readonly upMs: number) {
    this.env = Object.fromEntries(env.trim().split(/\s+/).map((kv) => kv.split('=', 2) as [string, string]));
  }

  /** `silence`: the controller's node-down silence in ms (ops/fleet --silence). */
  static async up(hosts: number, o: { silence?: number } = {}): Promise<Fleet> {
    const prefix = `f${randomBytes(2).toString('hex')}`;
    const args = ['up', '--hosts', String(hosts), '--prefix', prefix, ...(o.silence ? ['--silence', String(o.silence)] : [])];
    const r = spawnSync(join(ROOT, 'ops/fleet'), args, { encoding: 'utf8', timeout: 120_000 * SLOW });
    if (r.status !== 0) {
      spawnSync(join(ROOT, 'ops/fleet'), ['down', '--prefix', prefix], { encoding: 'utf8' });
      throw new Error(`ops/fleet up exited ${r.status}: ${r.stderr.trim()}`);
    }
    const m = /in (\d+) ms; (.*)$/m.exec(r.stdout);
    if (!m) throw new Error(`ops/fleet up said: ${r.stdout}`);
    return new Fleet(prefix, hosts, m[2], Number(m[1]));
  }

  /** The node id of host `h<i>`. */
  node(i: number): string { return `${this.prefix}h${i}`; }

  get dir(): string { return join(process.env.SWARMLITE_FLEET_DIR ?? '/tmp', `swarmlite-fleet-${this.prefix}`); }

  /** ops/fleet with this fleet's prefix; throws on failure. */
  fleet(...args: string[]): string {
    const r = spawnSync(join(ROOT, 'ops/fleet'), [args[0], '--prefix', this.prefix, ...args.slice(1)], { encoding: 'utf8', timeout: 60_000 * SLOW });
    if (r.status !== 0) throw new Error(`ops/fleet ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  kill(host: string, what: Proc = 'agent'): void { this.fleet('kill', host, what); }
  revive(host: string, what: Proc = 'agent'): void { this.fleet('revive', host, what); }
  partition(host: string): void { this.fleet('partition', host); }
  heal(host: string): void { this.fleet('heal', host); }

  tsctl(args: string[], o: { timeout?: number } = {}): Promise<Result> {
    return runTsctl(args, { ...o, env: this.env });
  }

  async ok(args: string[]): Promise<string> {
    const r = await this.tsctl(args);
    if (r.code !== 0) throw new Error(`tsctl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** The nodes as `tsctl node ls --format json` gives them. */
  async nodes(): Promise<{ id: string; hostname: string; state?: string; availability?: string; labels?: Record<string, string> }[]> {
    return JSON.parse(await this.ok(['node', 'ls', '--format', 'json']));
  }

  async importBusybox(): Promise<void> {
    const cache = process.env.SWARMLITE_TEST_CACHE;
    const tmp = cache ? undefined : mkdtempSync(join(tmpdir(), 'swl-fleet-img-'));
    const tar = join(cache ?? tmp!, 'busybox.tar');
    try {
      if (!existsSync(tar)) {
        const part = `${tar}.${process.pid}`;
        const b = spawnSync(join(ROOT, 'ops/build-busybox-rootfs'), [part], { encoding: 'utf8' });
        if (b.status !== 0) throw new Error(`build-busybox-rootfs: ${b.stderr}`);
        renameSync(part, tar);
      }
      await this.ok(['image', 'import', tar, '--name', 'busybox']);
    } finally { if (tmp) rmSync(tmp, { recursive: true, force: true }); }
  }

  /** Tears the fleet down; returns ops/fleet's figure in ms. */
  down(): number {
    const r = spawnSync(join(ROOT, 'ops/fleet'), ['down', '--prefix', this.prefix], { encoding: 'utf8', timeout: 120_000 * SLOW });
    if (r.status !== 0) throw new Error(`ops/fleet down exited ${r.status}: ${r.stderr.trim()}`);
    return Number(/in (\d+) ms/.exec(r.stdout)?.[1] ?? NaN);
  }
}

/** What a fleet leaves on the machine under its prefix: netns, links, processes (empty when clean). */
export function leftovers(prefix: string): string[] {
  const out: string[] = [];
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(`swf${prefix}-`));
  out.push(...ns.map((n) => `netns ${n}`));
  const links = spawnSync('ip', ['-o', 'link'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`swf${prefix}`));
  out.push(...links.map((l) => `link ${l.split(':')[1]?.trim()}`));
  const procs = spawnSync('pgrep', ['-f', `swarmlite-fleet-${prefix}/`], { encoding: 'utf8' }).stdout.trim();
  if (procs) out.push(`processes ${procs.replace(/\n/g, ' ')}`);
  const mounts = spawnSync('grep', [`swarmlite-fleet-${prefix}/`, '/proc/mounts'], { encoding: 'utf8' }).stdout.trim();
  if (mounts) out.push(`mounts ${mounts}`);
  const cg = spawnSync('sh', ['-c', `find /sys/fs/cgroup -maxdepth 3 -type d -name '*${prefix}h*' 2>/dev/null`], { encoding: 'utf8' }).stdout.trim();
  if (cg) out.push(`cgroups ${cg.replace(/\n/g, ' ')}`);
  return out;
}

/** A test file's after(): the fleet down, and an error if it left anything on the machine. */
export function downClean(f: Fleet | undefined): void {
  if (!f) return;
  const p = f.prefix;
  f.down();
  const left = leftovers(p);
  if (left.length) throw new Error(`ops/fleet down left: ${left.join('; ')}`);
}

export { sleep, until };
