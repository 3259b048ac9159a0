// SWARMLITE_TRACE_START=1: the controller's start-up phases on stderr, each with the ms since
// the process began (the reader thread's too, on the same clock), so a slow start says which
// wait or which work it spent its time on (test/bench/replay.ts prints them with BENCH_TRACE=1).
import { readFileSync } from 'node:fs';
import { isMainThread, workerData } from 'node:worker_threads';

const on = process.env.SWARMLITE_TRACE_START === '1';
/** The main thread's time origin: a worker is given it (workerData.traceOrigin) to print on the same clock. */
export const traceOrigin = (): number => performance.timeOrigin;
const origin = isMainThread ? performance.timeOrigin : Number((workerData as { traceOrigin?: number } | null)?.traceOrigin ?? performance.timeOrigin);

/** Notes that `step` ended now (nothing unless SWARMLITE_TRACE_START=1). */
export function mark(step: string): void {
  if (!on) return;
  const ms = performance.timeOrigin + performance.now() - origin;
  process.stderr.write(`controller: start +${ms.toFixed(0)} ms ${isMainThread ? '' : '(reader) '}${step}\n`);
}

/** Whether the phases are printed (a caller that measures something only for them asks first). */
export const tracing = on;

/**
 * The CPU seconds this thread has used (Linux's /proc/thread-self), or undefined: how a trace
 * tells the reader thread's share of a catch-up from the fold's (process.cpuUsage sums them).
 */
export function threadCpu(): number | undefined {
  try {
    const f = readFileSync('/proc/thread-self/stat', 'utf8');
    const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(x[11]) + Number(x[12])) / 100;
  } catch { return undefined; }
}
