// tsctl as a user runs it (bin/tsctl.cjs, the command), traced, with its warm processes
// (tsctl/warm.ts) under a runtime directory of the test's own: what the tests of the warm
// tsctl (cli-warm, pull-warm) call it with, and how they find and kill those processes.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { ROOT, until } from './cluster.js';

export const TSCTL = join(ROOT, 'bin/tsctl.cjs');

export interface R { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

export class WarmHome {
  /** `runtime` is XDG_RUNTIME_DIR of every call; `base` the environment each call starts from. */
  constructor(readonly runtime: string, private readonly base: () => Record<string, string>) {}

  /** One call; `onSpawn` sees the process (to kill it, to write its stdin). */
  tsctl(args: string[], env: Record<string, string> = {}, onSpawn?: (p: ReturnType<typeof spawn>) => void, cwd?: string): Promise<R> {
    return new Promise((resolve) => {
      const p = spawn(TSCTL, args, { cwd, env: { ...process.env, ...this.base(), XDG_RUNTIME_DIR: this.runtime, TSCTL_TRACE: '1', TSCTL_WARM_IDLE: '20', ...env } });
      let stdout = '', stderr = '';
      p.stdout!.on('data', (d) => (stdout += d));
      p.stderr!.on('data', (d) => (stderr += d));
      onSpawn?.(p);
      p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  }

  /**
   * One call through tsctl's C client (native/build/tsctl, the command users run), untraced (a
   * traced call is bin/tsctl.cjs's); `nodeStarted`: a node process started for it (a fallback to
   * bin/tsctl.cjs: NODE_OPTIONS makes any node say so).
   */
  client(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: Buffer; stderr: string; nodeStarted: boolean }> {
    const mark = `${this.runtime}.node-started`, script = `${this.runtime}.marker.cjs`;
    rmSync(mark, { force: true });
    writeFileSync(script, `require('fs').appendFileSync(${JSON.stringify(mark)}, 'node\\n');\n`);
    const e: Record<string, string> = { ...process.env, ...this.base(), XDG_RUNTIME_DIR: this.runtime, TSCTL_WARM_IDLE: '20', NODE_OPTIONS: `--require=${script}`, ...env };
    delete e.TSCTL_TRACE;
    return new Promise((resolve) => {
      const p = spawn(join(ROOT, 'native/build/tsctl'), args, { env: e });
      const out: Buffer[] = [];
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => out.push(d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code) => { resolve({ code, stdout: Buffer.concat(out), stderr, nodeStarted: existsSync(mark) }); rmSync(mark, { force: true }); rmSync(script, { force: true }); });
    });
  }

  sockets(dir = join(this.runtime, 'swarmlite')): string[] {
    return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.sock')).map((f) => join(dir, f)) : [];
  }

  /** The warm processes serving under `runtime` (their environment names its socket). */
  pids(): number[] {
    return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try { return readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').some((e) => e.startsWith(`TSCTL_WARM_SERVE=${this.runtime}/`)); } catch { return false; }
    }).map(Number);
  }

  async kill(): Promise<void> {
    for (const p of this.pids()) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    await until(() => this.pids().length === 0, 5000, 'warm processes gone');
  }
}

/** Whether the call was served by a warm process (its trace says so). */
export const warmCall = (r: R): boolean => /^tsctl trace: node [^;]*\(warm\);/m.test(r.stderr);
/** The call's stderr without its trace line. */
export const untraced = (r: R): string => r.stderr.replace(/^tsctl trace: .*\n/m, '');

/** One request written on a warm socket as a client would; the frames it got back until the socket closed. */
export function askWarm(sock: string, request: object): Promise<Record<string, unknown>[]> {
  return new Promise((resolve) => {
    const frames: Record<string, unknown>[] = [];
    let buf = '';
    const s = createConnection(sock, () => s.write(`${JSON.stringify(request)}\n`));
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) { frames.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>); buf = buf.slice(i + 1); }
    });
    s.on('error', () => resolve(frames));
    s.on('close', () => resolve(frames));
    setTimeout(() => { s.destroy(); }, 30000);
  });
}
