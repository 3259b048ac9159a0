// sl-runtime's command line: runc's verbs, flags and exit codes (1 and one line on stderr
// for its own errors; run and exec exit as the process did), so tools that drive runc
// (containerd's shim, the OCI runtime-tools validation suite) can drive it.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RuntimeCliError } from './errors.js';
import { OCI_VERSION, listStates, stateOf } from './state.js';
import type { ExecProcess } from '../runtime/exec-launch.js';

export const VERSION = '0.1.0';

/** Flags that take a value, per verb ("" = global). Any other --flag is a boolean. */
const VALUED: Record<string, string[]> = {
  '': ['--root', '--log', '--log-format', '--criu', '--rootless'],
  create: ['--bundle', '-b', '--pid-file', '--console-socket', '--preserve-fds'],
  run: ['--bundle', '-b', '--pid-file', '--console-socket', '--preserve-fds'],
  exec: ['--env', '-e', '--cwd', '--user', '-u', '--pid-file', '--process', '-p', '--console-socket', '--preserve-fds', '--cap', '-c', '--additional-gids', '-g', '--process-label', '--apparmor', '--cgroup'],
  ps: ['--format', '-f'],
  list: ['--format', '-f'],
  spec: ['--bundle', '-b'],
  kill: [], delete: [], start: [], state: [],
};
const VERBS = new Set(Object.keys(VALUED).filter(Boolean));

export interface Parsed { flags: Map<string, string[]>; args: string[] }

/** Pure: splits flags (--x v, --x=v, -x v) from positional arguments; flags stop at the first positional for exec/run. */
export function parseArgs(argv: string[], valued: string[], stopAtFirst: boolean): Parsed {
  const flags = new Map<string, string[]>();
  const args: string[] = [];
  const add = (k: string, v: string) => flags.set(k, [...(flags.get(k) ?? []), v]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (args.length && stopAtFirst) { args.push(a); continue; }
    if (a === '--') { args.push(...argv.slice(i + 1)); break; }
    if (a.startsWith('-') && a.length > 1) {
      const eq = a.indexOf('=');
      const k = eq > 0 ? a.slice(0, eq) : a;
      if (eq > 0) add(k, a.slice(eq + 1));
      else if (valued.includes(k)) {
        if (i + 1 >= argv.length) throw new RuntimeCliError(`flag ${k} needs a value`);
        add(k, argv[++i]!);
      } else add(k, 'true');
    } else args.push(a);
  }
  return { flags, args };
}

const one = (p: Parsed, ...names: string[]) => { for (const n of names) { const v = p.flags.get(n); if (v) return v[v.length - 1]; } return undefined; };
const has = (p: Parsed, ...names: string[]) => names.some((n) => { const v = p.flags.get(n); return v !== undefined && v[v.length - 1] !== 'false'; });

function needId(p: Parsed, verb: string): string {
  const id = p.args[0];
  if (!id) throw new RuntimeCliError(`"${verb}" requires a container id`);
  return id;
}

interface Global { root: string; log?: string; logFormat: string }

function logError(g: Global | undefined, raw: string): void {
  // one line, whatever a config.json or an argument held
  const msg = raw.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  process.stderr.write(`sl-runtime: ${msg}\n`);
  if (!g?.log) return;
  const time = new Date().toISOString();
  const line = g.logFormat === 'json' ? JSON.stringify({ level: 'error', msg, time }) : `time="${time}" level=error msg=${JSON.stringify(msg)}`;
  try { appendFileSync(g.log, line + '\n'); } catch { /* the error already went to stderr */ }
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

/** Forwards the signals a foreground run/exec gets to its process, as runc's signal handler does. */
function forwardSignals(pid: number): () => void {
  const h = (s: NodeJS.Signals) => { try { process.kill(pid, s); } catch { /* gone */ } };
  for (const s of FORWARDED) process.on(s, h);
  return () => { for (const s of FORWARDED) process.off(s, h); };
}

export async function main(argv: string[]): Promise<number> {
  let g: Global | undefined;
  try {
    let i = 0;
    const globals: string[] = [];
    while (i < argv.length && !VERBS.has(argv[i]!) && argv[i] !== 'help') {
      globals.push(argv[i]!);
      if (VALUED['']!.includes(argv[i]!) && i + 1 < argv.length) globals.push(argv[++i]!);
      i++;
    }
    const gp = parseArgs(globals, VALUED['']!, false);
    g = { root: resolve(one(gp, '--root') ?? '/run/sl-runtime'), log: one(gp, '--log'), logFormat: one(gp, '--log-format') ?? 'text' };
    if (g.logFormat !== 'text' && g.logFormat !== 'json') throw new RuntimeCliError(`--log-format ${JSON.stringify(g.logFormat)}: text or json`);
    if (has(gp, '--version', '-v')) {
      process.stdout.write(`sl-runtime version ${VERSION}\nspec: ${OCI_VERSION}\n`);
      return 0;
    }
    const verb = argv[i];
    if (gp.args.length) throw new RuntimeCliError(`unknown command ${JSON.stringify(gp.args[0]!.slice(0, 64))}`);
    if (!verb || verb === 'help' || has(gp, '--help', '-h')) {
      process.stdout.write('usage: sl-runtime [--root DIR] [--log F] [--log-format text|json] [--debug] [--systemd-cgroup]\n' +
        '  create [--bundle DIR] [--pid-file F] ID | start ID | state ID | kill [--all] ID [SIG] | delete [--force] ID\n' +
        '  run [--bundle DIR] [--pid-file F] [-d] ID | exec [-e K=V] [--cwd D] [-u U[:G]] [-d] [--process F] ID CMD... | ps [-f json] ID\n' +
        '  list [-f json] [-q] | spec [--bundle DIR] | --version\n');
      return verb || has(gp, '--help', '-h') ? 0 : 1;
    }
    const p = parseArgs(argv.slice(i + 1), VALUED[verb]!, verb === 'exec');
    // state and list (which tools poll) read files only: the start path's modules load for the other verbs
    if (verb === 'state') { process.stdout.write(JSON.stringify(stateOf(g.root, needId(p, verb)), null, 2) + '\n'); return 0; }
    if (verb === 'list') {
      const all = listStates(g.root);
      const fmt = one(p, '--format', '-f') ?? 'table';
      if (has(p, '--quiet', '-q')) process.stdout.write(all.map((s) => s.id + '\n').join(''));
      else if (fmt === 'json') process.stdout.write(JSON.stringify(all) + '\n');
      else {
        process.stdout.write('ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n');
        for (const s of all) process.stdout.write(`${s.id}\t${s.pid}\t${s.status}\t${s.bundle}\t${s.created}\t${s.owner || 'root'}\n`);
      }
      return 0;
    }
    if (verb === 'spec') {
      const path = join(one(p, '--bundle', '-b') ?? '.', 'config.json');
      if (existsSync(path)) throw new RuntimeCliError(`File ${path} exists. Remove it first`);
      const { defaultSpec } = await import('./default-spec.js');
      writeFileSync(path, JSON.stringify(defaultSpec(), null, '\t') + '\n');
      return 0;
    }
    const { OciRuntime } = await import('./container.js');
    const rt = new OciRuntime(g.root);
    switch (verb) {
      case 'create':
        if (one(p, '--console-socket')) throw new RuntimeCliError('--console-socket: terminals are not supported by sl-runtime yet');
        await rt.create(needId(p, verb), { bundle: one(p, '--bundle', '-b') ?? '.', pidFile: one(p, '--pid-file') });
        return 0;
      case 'start': await rt.start(needId(p, verb)); return 0;
      case 'kill': rt.kill(needId(p, verb), p.args[1] ?? 'SIGTERM', has(p, '--all', '-a')); return 0;
      case 'delete': await rt.delete(needId(p, verb), has(p, '--force', '-f')); return 0;
      case 'ps': {
        const pids = rt.ps(needId(p, verb));
        const fmt = one(p, '--format', '-f') ?? 'table';
        if (fmt === 'json') process.stdout.write(JSON.stringify(pids) + '\n');
        else {
          process.stdout.write('PID   CMD\n');
          for (const pid of pids) {
            let cmd = '';
            try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '); } catch { /* exited */ }
            process.stdout.write(`${String(pid).padEnd(5)} ${cmd}\n`);
          }
        }
        return 0;
      }
      case 'run': {
        const id = needId(p, verb);
        if (one(p, '--console-socket')) throw new RuntimeCliError('--console-socket: terminals are not supported by sl-runtime yet');
        await rt.create(id, { bundle: one(p, '--bundle', '-b') ?? '.', pidFile: one(p, '--pid-file') });
        let st;
        try { st = await rt.start(id); } catch (e) { await rt.delete(id, true).catch(() => undefined); throw e; }
        if (has(p, '--detach', '-d')) return 0;
        const stop = forwardSignals(st.pid);
        const code = await rt.waitExit(id);
        stop();
        await rt.delete(id, true);
        return code;
      }
      case 'exec': {
        const id = needId(p, verb);
        if (has(p, '--tty', '-t')) throw new RuntimeCliError('--tty: terminals are not supported by sl-runtime yet');
        let proc: ExecProcess;
        const pf = one(p, '--process', '-p');
        if (pf) {
          let j: { args?: unknown; env?: unknown; cwd?: unknown; user?: { uid?: unknown; gid?: unknown }; terminal?: unknown };
          try { j = JSON.parse(readFileSync(pf, 'utf8')); } catch (e) { throw new RuntimeCliError(`--process ${pf}: ${(e as Error).message.split('\n')[0]}`); }
          if (j.terminal === true) throw new RuntimeCliError('--process: terminal is not supported by sl-runtime yet');
          if (!Array.isArray(j.args) || !j.args.length || j.args.some((a) => typeof a !== 'string')) throw new RuntimeCliError(`--process ${pf}: args is not a list of strings`);
          proc = { args: j.args as string[], env: Array.isArray(j.env) ? j.env as string[] : [], ...(typeof j.cwd === 'string' ? { workdir: j.cwd } : {}),
            ...(j.user ? { user: `${Number(j.user.uid ?? 0)}:${Number(j.user.gid ?? 0)}` } : {}) };
        } else {
          if (p.args.length < 2) throw new RuntimeCliError('exec: no command given (sl-runtime exec ID CMD...)');
          proc = { args: p.args.slice(1), env: p.flags.get('--env') ?? p.flags.get('-e') ?? [], ...(one(p, '--cwd') ? { workdir: one(p, '--cwd') } : {}),
            ...(one(p, '--user', '-u') ? { user: one(p, '--user', '-u') } : {}) };
        }
        const ex = await rt.exec(id, proc, one(p, '--pid-file'));
        if (has(p, '--detach', '-d')) return 0;
        const stop = forwardSignals(ex.pid);
        const code = await ex.wait();
        stop();
        return code;
      }
    }
    throw new RuntimeCliError(`unknown command ${JSON.stringify(verb)}`);
  } catch (e) {
    logError(g, e instanceof Error ? e.message : String(e));
    return 1;
  }
}

