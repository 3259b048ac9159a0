// One tsctl invocation's shared state: the cluster connection (opened on first use), who
// the user is, and how output is written.
import type { NatsConnection } from 'nats';
import type { Performance as NodePerformance } from 'node:perf_hooks';
import { AsyncLocalStorage } from 'node:async_hooks';
import { CliError, dial } from './client.js';
import { findCreds, readCreds, TrustError, type Creds } from '../shared/nats/trust.js';

/**
 * TSCTL_TRACE=1: where this invocation's time went, on stderr at exit: ms since the process
 * started, node's own phases from performance.nodeTiming, then tsctl's marks; then the
 * process's CPU time (user + system, ms) at each mark, as cpu.<mark>: on a loaded host the
 * wall times say as much about the neighbours as about tsctl. For measuring.
 */
let marks: [string, number, number][] | undefined;
export function startTrace(): void {
  if (!process.env.TSCTL_TRACE) return;
  marks = [];
  process.once('exit', traceReport);
}
export function mark(label: string): void { marks?.push([label, performance.now(), cpuMs()]); }
const cpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
function traceReport(): void {
  const t = (performance as unknown as NodePerformance).nodeTiming;
  const all: [string, number][] = [['v8Start', t.v8Start], ['bootstrapComplete', t.bootstrapComplete], ...marks!.map(([l, ms]): [string, number] => [l, ms]), ['exit', performance.now()]];
  const cpu = [...marks!.map(([l, , c]): [string, number] => [l, c]), ['exit', cpuMs()]];
  process.stderr.write(`tsctl trace: node ${process.execArgv.join(' ')}; ${[...all, ...cpu.map(([l, c]) => [`cpu.${l}`, c])].map(([l, ms]) => `${l}=${(ms as number).toFixed(1)}`).join(' ')}\n`);
}

/** Where a call's output goes, its exit and its signals: this process's, or (tsctl/warm.ts) a client's over a socket. */
export interface Io {
  readonly stdout: Writer; readonly stderr: Writer;
  readonly env: NodeJS.ProcessEnv;
  /** the directory relative paths (--creds, a seccomp profile) are read from */
  readonly cwd: string;
  exitCode: number | undefined;
  /** ends the call: process.exit, or the client's exit frame */
  exit(code: number): void;
  onSignal(sig: 'SIGINT' | 'SIGTERM', f: (sig: NodeJS.Signals) => void): void;
  /**
   * Fires when the call's client is gone (the warm process's: its socket closed, as when the
   * client was killed); tsctl's own process has none (a kill ends the call with the process).
   * Work that outlives a direct call's kill otherwise (a pull) stops on it.
   */
  readonly gone?: AbortSignal;
  /**
   * Work that goes on after the call's answer (a pull's fill of the object store): the warm
   * process has it and stays up until it settles; tsctl's own process has none (the call
   * then does that work before it answers).
   */
  readonly background?: (work: Promise<unknown>) => void;
}
export interface Writer { write(data: string | Uint8Array, cb?: () => void): unknown; readonly isTTY?: boolean; readonly writableLength: number }

const processIo: Io = {
  get stdout() { return process.stdout; }, get stderr() { return process.stderr; },
  get env() { return process.env; }, get cwd() { return process.cwd(); },
  get exitCode() { return process.exitCode as number | undefined; }, set exitCode(c) { process.exitCode = c; },
  exit: (code) => process.exit(code),
  onSignal: (sig, f) => { process.on(sig, f); },
};

/** One invocation's state: in tsctl's own process the one, in the warm process (tsctl/warm.ts) one per client. */
export interface Call {
  io: Io;
  url: () => string | undefined;
  credsFlag: () => string | undefined;
  limitMs?: number;
  creds?: Creds | null;
  conn?: Promise<NatsConnection>;
  /** how the warm process gets a connection for these credentials (its shared ones) */
  dial?: (url: string | undefined, creds: Creds | null) => Promise<NatsConnection>;
}
const own: Call = { io: processIo, url: () => process.env.SWARMLITE_NATS, credsFlag: () => undefined };
const calls = new AsyncLocalStorage<Call>();
const call = (): Call => calls.getStore() ?? own;
/** Runs `f` as call `c` (its io, flags, identity): everything it awaits sees `c`; callbacks capture io() first. */
export const asCall = <T>(c: Call, f: () => T): T => calls.run(c, f);
/** The current call's io: capture it before handing work to callbacks (a NATS message's callback runs outside the call). */
export const io = (): Io => call().io;

/** --timeout: the most any wait of this invocation may take (a request, a node's confirmation, a start). */
export function setTimeoutLimit(seconds: string | undefined): void {
  if (seconds === undefined) return;
  const n = Number(seconds);
  if (!(n > 0) || !Number.isFinite(n)) throw new CliError(`invalid --timeout "${seconds}": a positive number of seconds`);
  call().limitMs = n * 1000;
}

/** How long to wait: the user's --timeout if given, else `ms`. */
export const waitMs = (ms: number): number => call().limitMs ?? ms;

/**
 * Writes everything still buffered for stdout and stderr (a pipe may be slow to read). A stream
 * holding nothing (writableLength counts a write still in flight) has given the kernel all it
 * was given, as files and non-full pipes always have on Linux: only one still holding bytes is
 * waited on, so the usual exit does not wait a turn of the event loop for two empty writes.
 */
export async function flushOutput(o: Io = io()): Promise<void> {
  await Promise.all([o.stdout, o.stderr].filter((s) => s.writableLength > 0).map((s) => new Promise<void>((r) => s.write('', () => r()))));
}

/** The cluster's address as given (--nats, SWARMLITE_NATS), or undefined (the credentials'): for a second connection. */
export const natsUrl = (): string | undefined => call().url();

export function setUrl(f: () => string | undefined): void {
  const c = call();
  c.url = () => f() ?? c.io.env.SWARMLITE_NATS;
}

/** --creds FILE (else SWARMLITE_CREDS, ~/.config/swarmlite/creds, the default cluster's admin creds). */
export function setCreds(f: () => string | undefined): void { call().credsFlag = f; }

/** This invocation's identity, or null: then tsctl connects anonymously (and the server refuses it). */
export function identity(): Creds | null {
  const c = call();
  if (c.creds !== undefined) return c.creds;
  // relative names as given (errors name them so), read from the call's directory
  const file = findCreds(c.credsFlag(), c.io.env, c.io.cwd);
  try { return (c.creds = file ? readCreds(file, c.io.cwd) : null); } catch (err) {
    throw new CliError(err instanceof TrustError ? err.message : String(err));
  }
}

export const nc = (): Promise<NatsConnection> => {
  const c = call();
  return (c.conn ??= (c.dial ?? dial)(c.url(), identity()));
};

/**
 * Who this tsctl is: the name of its credentials. Only a hint for the subject it asks on
 * (api.<name>.<verb>): the server refuses the subject unless the connection is that identity,
 * and the controller takes the user from the subject, not from anything tsctl writes.
 */
export const me = (): string => identity()?.name ?? 'anonymous';

export const json = (v: unknown): string => JSON.stringify(v, null, 2);

export function out(s: string): void { io().stdout.write(s.endsWith('\n') ? s : `${s}\n`); }

/** A container's output frame to `o` (the call's io, captured): stream 2 is stderr. */
export function write(stream: number, data: Uint8Array, o: Io = io()): void {
  (stream === 2 ? o.stderr : o.stdout).write(data);
}

/** How many refs of one command are worked on at once (docker's CLI runs them in parallel too). */
const PARALLEL = 16;

/**
 * Runs `f` for each ref like docker does: several at once; then, in the order given, each
 * that worked is printed and each that failed reported; the command fails if any did.
 */
export async function each(refs: string[], f: (ref: string) => Promise<unknown>, parallel = PARALLEL): Promise<void> {
  const o = io(); // the call's (in the warm process a client's), not the process's
  await nc();
  const results: (CliError | undefined)[] = new Array(refs.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < refs.length; i = next++) {
      try { await f(refs[i]!); } catch (err) {
        if (!(err instanceof CliError)) throw err;
        results[i] = err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, refs.length) }, worker));
  let failed: CliError | undefined;
  refs.forEach((ref, i) => {
    const err = results[i];
    if (err) { o.stderr.write(`tsctl: ${err.message}\n`); failed = err; } else out(ref);
  });
  if (failed) throw new CliError('', failed.exitCode);
}

