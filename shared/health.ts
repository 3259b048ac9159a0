// Health checks as docker has them: the config (its field names, durations in ns, as an image
// config's `Healthcheck` and a container's Config.Healthcheck), how a run's flags merge over an
// image's, and the state machine a probe result drives (starting → healthy / unhealthy). Pure:
// the agent's prober (agent/health.ts) does the timing and the exec, the reducer the view.
import { arr, int, obj, opt, str, ValidationError, type Check } from './validate.js';

/** docker's HealthConfig: Test is ["CMD", arg...], ["CMD-SHELL", "text"], ["NONE"], or [] (inherit). */
export interface Healthcheck { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number; Retries?: number }

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

/** One probe as docker's State.Health.Log keeps it (times in ms since epoch here; inspect prints them). */
export interface HealthProbe { start: number; end: number; exitCode: number; output: string }

export interface HealthState { status: HealthStatus; failingStreak: number; log: HealthProbe[] }

const NS_PER_MS = 1_000_000;
/** docker's defaults when a field is 0 or absent. */
export const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, startPeriodMs: 0, startIntervalMs: 5_000, retries: 3 } as const;
/** What a probe's output keeps (docker: 4 KiB), and how many probes the log keeps (docker: 5). */
export const HEALTH_OUTPUT_MAX = 4096;
export const HEALTH_LOG_KEEP = 5;
/** The longest duration a field may hold: a day, in ns (bounds the arithmetic and the timers). */
export const HEALTH_MAX_NS = 86_400 * 1e9;
/** docker refuses a non-zero duration under 1 ms. */
export const HEALTH_MIN_NS = 1e6;
export const HEALTH_MAX_RETRIES = 1000;
const MAX_TEST_ARGS = 1024;

const duration = opt(int(0, HEALTH_MAX_NS));
const shape = obj({
  Test: arr(str(65536), MAX_TEST_ARGS), Interval: duration, Timeout: duration, StartPeriod: duration, StartInterval: duration,
  Retries: opt(int(0, HEALTH_MAX_RETRIES)),
});

/** A Healthcheck as the log carries it: Test's first word known and its form right, durations 0 or at least 1 ms. */
export const healthcheckCheck: Check<Healthcheck> = (v, f) => {
  const h = shape(v, f) as Healthcheck;
  const problem = healthcheckProblem(h);
  if (problem) throw new ValidationError(f, problem);
  return h;
};

/** Why a Healthcheck is not well formed, or undefined. */
export function healthcheckProblem(h: Healthcheck): string | undefined {
  const [kind, ...rest] = h.Test;
  if (kind === 'NONE' && rest.length) return 'Test ["NONE"] takes nothing after NONE';
  if (kind === 'CMD' && (!rest.length || !rest[0])) return 'Test ["CMD", ...] needs a command';
  if (kind === 'CMD-SHELL' && (rest.length !== 1 || !rest[0]!.trim())) return 'Test ["CMD-SHELL", "..."] takes one command line';
  if (kind !== undefined && kind !== 'NONE' && kind !== 'CMD' && kind !== 'CMD-SHELL') return `Test starts with ${JSON.stringify(kind.slice(0, 20))}: CMD, CMD-SHELL or NONE`;
  for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const) {
    const d = h[k];
    if (d !== undefined && d !== 0 && d < HEALTH_MIN_NS) return `${k} ${d} ns: 0 (the default) or at least 1 ms`;
  }
  return undefined;
}

/**
 * A Go duration (docker's flag and HEALTHCHECK syntax: 30s, 1m30s, 500ms, 1.5s, 2h) in ns; a
 * plain 0 too. Undefined when it is not one, or is negative or over a day.
 */
export function parseGoDuration(s: string): number | undefined {
  if (s === '0') return 0;
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(s) || s.length > 64) return undefined;
  const unit: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let ns = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ns += Number(m[1]) * unit[m[2]!]!;
  ns = Math.round(ns);
  return ns <= HEALTH_MAX_NS ? ns : undefined;
}

/** A duration in ns as docker prints it in a message: 30s, 1m30s, 500ms. */
export function formatNs(ns: number): string {
  if (ns < 1e9) return `${Math.round(ns / 1e6)}ms`;
  let s = Math.round(ns / 1e9);
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || (!h && !m) ? `${s}s` : ''}`;
}

/**
 * A run's Healthcheck over its image's, as docker merges them: the run's Test when it gives
 * one, and each duration or count the run leaves at 0 taken from the image. NONE from either
 * side that decides is kept (inspect shows it); no Test on either side is no check.
 */
export function mergeHealthcheck(image: Healthcheck | undefined, run: Healthcheck | undefined): Healthcheck | undefined {
  if (!run) return image;
  if (!image) return run.Test.length ? run : undefined;
  const out: Healthcheck = { Test: run.Test.length ? run.Test : image.Test };
  for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries'] as const) {
    const v = run[k] || image[k];
    if (v) out[k] = v;
  }
  return out;
}

/** Whether a check runs: CMD or CMD-SHELL (NONE and an empty Test do not). */
export const checks = (h: Healthcheck | undefined): h is Healthcheck => h !== undefined && (h.Test[0] === 'CMD' || h.Test[0] === 'CMD-SHELL');

/** What the probe execs: CMD's words, or CMD-SHELL's line given to /bin/sh -c (docker's shell on Linux). */
export function probeArgs(h: Healthcheck): string[] {
  return h.Test[0] === 'CMD-SHELL' ? ['/bin/sh', '-c', h.Test[1]!] : h.Test.slice(1);
}

export interface HealthTiming { intervalMs: number; timeoutMs: number; startPeriodMs: number; startIntervalMs: number; retries: number }

/** The config's durations in ms with docker's defaults for the ones left at 0. */
export function healthTiming(h: Healthcheck): HealthTiming {
  const ms = (v: number | undefined, d: number) => (v ? Math.max(1, Math.round(v / NS_PER_MS)) : d);
  return {
    intervalMs: ms(h.Interval, HEALTH_DEFAULTS.intervalMs), timeoutMs: ms(h.Timeout, HEALTH_DEFAULTS.timeoutMs),
    startPeriodMs: ms(h.StartPeriod, HEALTH_DEFAULTS.startPeriodMs), startIntervalMs: ms(h.StartInterval, HEALTH_DEFAULTS.startIntervalMs),
    retries: h.Retries || HEALTH_DEFAULTS.retries,
  };
}

export const initialHealth = (): HealthState => ({ status: 'starting', failingStreak: 0, log: [] });

/**
 * One probe's result applied (docker's handleProbeResult): a pass makes it healthy and ends the
 * streak; a failure while still starting within the start period is logged but not counted;
 * any other failure counts, and `retries` in a row make it unhealthy. `startedAt`: when the
 * container's run began (ms). Returns the new state and whether its status changed.
 */
export function applyProbe(s: HealthState, p: HealthProbe, t: HealthTiming, startedAt: number): { state: HealthState; changed: boolean } {
  const log = [...s.log, p].slice(-HEALTH_LOG_KEEP);
  let status = s.status, failingStreak = s.failingStreak;
  if (p.exitCode === 0) {
    status = 'healthy'; failingStreak = 0;
  } else if (!(s.status === 'starting' && p.start - startedAt < t.startPeriodMs)) {
    failingStreak += 1;
    if (failingStreak >= t.retries) status = 'unhealthy';
  }
  return { state: { status, failingStreak, log }, changed: status !== s.status };
}

/** How long after a probe's end the next one starts: the start interval while starting within the start period, else the interval. */
export function nextProbeIn(s: HealthState, t: HealthTiming, startedAt: number, now: number): number {
  return s.status === 'starting' && now - startedAt < t.startPeriodMs ? t.startIntervalMs : t.intervalMs;
}

/** Output as a probe keeps it: at most HEALTH_OUTPUT_MAX bytes of UTF-8, not cut inside a character. */
export function truncateOutput(b: Uint8Array): string {
  const s = new TextDecoder('utf-8', { fatal: false }).decode(b.subarray(0, HEALTH_OUTPUT_MAX));
  // a character cut at the end decodes as U+FFFD: drop it rather than show a broken one
  return b.length > HEALTH_OUTPUT_MAX ? s.replace(/\uFFFD$/, '') : s;
}

/** What ps adds after "Up 5 seconds": docker's words. */
export function healthSuffix(status: HealthStatus | undefined): string {
  if (status === 'healthy') return ' (healthy)';
  if (status === 'unhealthy') return ' (unhealthy)';
  if (status === 'starting') return ' (health: starting)';
  return '';
}

/** An image config's Healthcheck, when well formed (a pulled image is hostile input: anything else is no check). */
export function imageHealthcheck(v: unknown): Healthcheck | undefined {
  if (v === undefined || v === null) return undefined;
  try { return healthcheckCheck(v, 'Healthcheck'); } catch { return undefined; }
}
