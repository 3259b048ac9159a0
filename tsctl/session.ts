// One tsctl invocation's shared state: the cluster connection (opened on first use), who
// the user is, and how output is written.
import type { NatsConnection } from 'nats';
import type { Performance as NodePerformance } from 'node:perf_hooks';
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

let url = (): string | undefined => process.env.SWARMLITE_NATS;
let credsFlag = (): string | undefined => undefined;
let limitMs: number | undefined;

/** --timeout: the most any wait of this invocation may take (a request, a node's confirmation, a start). */
export function setTimeoutLimit(seconds: string | undefined): void {
  if (seconds === undefined) return;
  const n = Number(seconds);
  if (!(n > 0) || !Number.isFinite(n)) throw new CliError(`invalid --timeout "${seconds}": a positive number of seconds`);
  limitMs = n * 1000;
}

/** How long to wait: the user's --timeout if given, else `ms`. */
export const waitMs = (ms: number): number => limitMs ?? ms;

/**
 * Writes everything still buffered for stdout and stderr (a pipe may be slow to read). A stream
 * holding nothing (writableLength counts a write still in flight) has given the kernel all it
 * was given, as files and non-full pipes always have on Linux: only one still holding bytes is
 * waited on, so the usual exit does not wait a turn of the event loop for two empty writes.
 */
export async function flushOutput(): Promise<void> {
  await Promise.all([process.stdout, process.stderr].filter((s) => s.writableLength > 0).map((s) => new Promise<void>((r) => s.write('', () => r()))));
}
let conn: NatsConnection | undefined;

/** The cluster's address as given (--nats, SWARMLITE_NATS), or undefined (the credentials'): for a second connection. */
export const natsUrl = (): string | undefined => url();

export function setUrl(f: () => string | undefined): void {
  url = () => f() ?? process.env.SWARMLITE_NATS;
}

/** --creds FILE (else SWARMLITE_CREDS, ~/.config/swarmlite/creds, the default cluster's admin creds). */
export function setCreds(f: () => string | undefined): void { credsFlag = f; }

let creds: Creds | null | undefined;
/** This invocation's identity, or null: then tsctl connects anonymously (and the server refuses it). */
export function identity(): Creds | null {
  if (creds !== undefined) return creds;
  const file = findCreds(credsFlag());
  try { return (creds = file ? readCreds(file) : null); } catch (err) {
    throw new CliError(err instanceof TrustError ? err.message : String(err));
  }
}

export const nc = async (): Promise<NatsConnection> => (conn ??= await dial(url(), identity()));

/**
 * Who this tsctl is: the name of its credentials. Only a hint for the subject it asks on
 * (api.<name>.<verb>): the server refuses the subject unless the connection is that identity,
 * and the controller takes the user from the subject, not from anything tsctl writes.
 */
export const me = (): string => identity()?.name ?? 'anonymous';

export const json = (v: unknown): string => JSON.stringify(v, null, 2);

export function out(s: string): void { process.stdout.write(s.endsWith('\n') ? s : `${s}\n`); }

/** A container's output frame: stream 2 is stderr. */
export function write(stream: number, data: Uint8Array): void {
  (stream === 2 ? process.stderr : process.stdout).write(data);
}

/** How many refs of one command are worked on at once (docker's CLI runs them in parallel too). */
const PARALLEL = 16;

/**
 * Runs `f` for each ref like docker does: several at once; then, in the order given, each
 * that worked is printed and each that failed reported; the command fails if any did.
 */
export async function each(refs: string[], f: (ref: string) => Promise<unknown>, parallel = PARALLEL): Promise<void> {
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
    if (err) { process.stderr.write(`tsctl: ${err.message}\n`); failed = err; } else out(ref);
  });
  if (failed) throw new CliError('', failed.exitCode);
}

