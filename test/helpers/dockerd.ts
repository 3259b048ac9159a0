// A real docker daemon for round-trip tests (Debian's docker.io), kept off the host: its data,
// state and socket in a temp dir, no bridge, no iptables, no userland proxy. Only images are
// loaded and saved through it (no container runs), so it makes no cgroup or link; stop()
// leaves no process and no mount under its dir, even after a daemon that would not stop.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './cluster.js';

// Debian's client, which matches its daemon (another docker on PATH may be newer)
const CLIENT = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

export const haveDockerd = (): string | undefined =>
  (spawnSync('sh', ['-c', 'command -v dockerd && command -v containerd'], { encoding: 'utf8' }).status === 0
    ? undefined : 'dockerd is missing (apt-get install docker.io; ops/setup --tests installs it)');

export class Dockerd {
  private constructor(readonly dir: string, private proc: ChildProcess) {}

  static async start(dir: string): Promise<Dockerd> {
    const log = openSync(join(dir, 'dockerd.log'), 'a');
    const proc = spawn('dockerd', [
      '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'pid'),
      '-H', `unix://${join(dir, 'sock')}`, '--bridge=none', '--iptables=false', '--ip6tables=false',
      '--ip-masq=false', '--userland-proxy=false',
    ], { stdio: ['ignore', log, log] });
    closeSync(log);
    const d = new Dockerd(dir, proc);
    for (let i = 0; i < 240; i++) {
      if (d.docker(['version']).status === 0) return d;
      if (proc.exitCode !== null) break;
      await sleep(250);
    }
    await d.stop();
    throw new Error(`dockerd did not start: ${readFileSync(join(dir, 'dockerd.log'), 'utf8').slice(-600)}`);
  }

  docker(args: string[]) {
    return spawnSync(CLIENT, ['-H', `unix://${join(this.dir, 'sock')}`, ...args], { encoding: 'utf8', timeout: 120000 });
  }

  /** docker ARGS; throws with docker's own words when it fails. */
  ok(args: string[]): string {
    const r = this.docker(args);
    if (r.status !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr || r.error?.message}`);
    return r.stdout;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const gone = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      await Promise.race([gone, sleep(20000)]);
      if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    }
    // the containerd it started, if the daemon died before stopping it
    spawnSync('pkill', ['-KILL', '-f', join(this.dir, 'exec')]);
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => !!m && m.startsWith(`${this.dir}/`));
    for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
