// A plain container's --restart policy (docker's: no, on-failure[:N], always, unless-stopped)
// and the back-off between its starts. Pure: the agent keeps the count, the back-off and the
// time of the next start in its checkpoint, so the policy outlives an agent restart.

export const RESTART_POLICIES = ['no', 'on-failure', 'always', 'unless-stopped'] as const;
export type RestartPolicyName = (typeof RESTART_POLICIES)[number];
/** `maxRetries`: on-failure only; absent or 0: no limit. */
export interface RestartPolicy { name: RestartPolicyName; maxRetries?: number }

/** docker's restart manager: 100 ms, doubled at each start, at most a minute, back to 100 ms after a run of 10 s. */
export const BACKOFF_INITIAL_MS = 100;
export const BACKOFF_MAX_MS = 60_000;
export const BACKOFF_RESET_AFTER_MS = 10_000;
/** The most retries on-failure:N may ask for. */
export const MAX_RETRIES = 1_000_000;

export class RestartPolicyError extends Error {
  constructor(readonly input: string, why: string) {
    // quoted as JSON: one line whatever the input holds
    super(`invalid --restart ${JSON.stringify(input.slice(0, 64))}: ${why}`);
    this.name = 'RestartPolicyError';
  }
}

/** `on-failure:3` → { name: 'on-failure', maxRetries: 3 }. Throws RestartPolicyError. */
export function parseRestartPolicy(v: string): RestartPolicy {
  const m = /^(no|on-failure|always|unless-stopped)(?::(.*))?$/s.exec(v);
  if (!m) throw new RestartPolicyError(v, 'no, on-failure[:N], always or unless-stopped');
  const name = m[1] as RestartPolicyName;
  if (m[2] === undefined) return { name };
  if (name !== 'on-failure') throw new RestartPolicyError(v, `a retry count is for on-failure only (${name} takes none)`);
  if (!/^[0-9]{1,7}$/.test(m[2]) || Number(m[2]) > MAX_RETRIES) throw new RestartPolicyError(v, `the retry count is a whole number from 0 to ${MAX_RETRIES}`);
  const n = Number(m[2]);
  return n > 0 ? { name, maxRetries: n } : { name };
}

export function formatRestartPolicy(p: RestartPolicy | undefined): string {
  if (!p) return 'no';
  return p.maxRetries ? `${p.name}:${p.maxRetries}` : p.name;
}

/**
 * Whether a container that exited with `exitCode` is started again. `count`: the starts the
 * policy made so far; `stopped`: a user stopped (or killed) it, which ends any policy.
 */
export function shouldRestart(p: RestartPolicy | undefined, exitCode: number, count: number, stopped: boolean): boolean {
  if (!p || p.name === 'no' || stopped) return false;
  if (p.name === 'on-failure') return exitCode !== 0 && (!p.maxRetries || count < p.maxRetries);
  return true;
}

/** The wait before the next start: `prevMs` the last one (0: none yet), `ranMs` how long the run that ended lasted. */
export function nextBackoff(prevMs: number, ranMs: number): number {
  const prev = ranMs >= BACKOFF_RESET_AFTER_MS ? 0 : prevMs;
  return prev <= 0 ? BACKOFF_INITIAL_MS : Math.min(prev * 2, BACKOFF_MAX_MS);
}

/**
 * What an agent does at its start with a container that has exited (not removed): start it
 * again at `at`, or leave it. `always` starts a stopped container again (docker's daemon
 * start does the same); `unless-stopped` keeps a user's stop.
 */
export function afterAgentStart(p: RestartPolicy | undefined, stopped: boolean, restartAt: number | undefined, now: number): number | undefined {
  if (!p || p.name === 'no') return undefined;
  if (stopped) return p.name === 'always' ? now : undefined;
  return restartAt;
}
