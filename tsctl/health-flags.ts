// run/create's health flags (docker's): --health-cmd, --health-interval, --health-timeout,
// --health-retries, --health-start-period, --health-start-interval, --no-healthcheck. Declared
// and translated here into a partial Healthcheck that the controller merges over the image's
// (shared/health.ts mergeHealthcheck); the run command only adds them.
import type { Command } from 'commander';
import type { RunRequest } from '../shared/api/controller.js';
import { formatNs, HEALTH_MAX_NS, HEALTH_MAX_RETRIES, HEALTH_MIN_NS, parseGoDuration, type Healthcheck } from '../shared/health.js';
import { CliError } from './client.js';

export interface HealthFlags {
  healthCmd?: string; healthInterval?: string; healthTimeout?: string; healthRetries?: string;
  healthStartPeriod?: string; healthStartInterval?: string; healthcheck?: boolean;
}

export function healthFlags(c: Command): Command {
  return c
    .option('--health-cmd <command>', 'command to check health (run with /bin/sh -c in the container)')
    .option('--health-interval <duration>', 'time between checks (ms|s|m|h, default 30s)')
    .option('--health-timeout <duration>', 'longest a check may run before it is killed and failed (default 30s)')
    .option('--health-retries <n>', 'consecutive failures that make it unhealthy (default 3)')
    .option('--health-start-period <duration>', 'time after the start when failures do not count (default 0s)')
    .option('--health-start-interval <duration>', 'time between checks during the start period (default 5s)')
    .option('--no-healthcheck', 'disable the image\'s HEALTHCHECK');
}

const DURATIONS = [['healthInterval', '--health-interval', 'Interval'], ['healthTimeout', '--health-timeout', 'Timeout'],
  ['healthStartPeriod', '--health-start-period', 'StartPeriod'], ['healthStartInterval', '--health-start-interval', 'StartInterval']] as const;

/** The flags as the run request has them (undefined: none given); a bad value or a conflict is one line naming the flag. */
export function healthRequest(o: HealthFlags): Pick<RunRequest, 'healthcheck'> {
  const given = o.healthCmd !== undefined || o.healthRetries !== undefined || DURATIONS.some(([k]) => o[k] !== undefined);
  // commander's --no-healthcheck: healthcheck is false when given, true (its default) otherwise
  if (o.healthcheck === false) {
    if (given) throw new CliError('--no-healthcheck conflicts with --health-* options');
    return { healthcheck: { Test: ['NONE'] } };
  }
  if (!given) return {};
  const h: Healthcheck = { Test: [] };
  if (o.healthCmd !== undefined) {
    if (!o.healthCmd.trim()) throw new CliError('invalid --health-cmd "": give the command to run');
    h.Test = ['CMD-SHELL', o.healthCmd];
  }
  for (const [k, flag, field] of DURATIONS) {
    const v = o[k];
    if (v === undefined) continue;
    const ns = parseGoDuration(v);
    if (ns === undefined) throw new CliError(`invalid ${flag} ${JSON.stringify(v.slice(0, 32))}: a duration like 30s, 1m30s or 500ms, at most ${formatNs(HEALTH_MAX_NS)}`);
    if (ns !== 0 && ns < HEALTH_MIN_NS) throw new CliError(`invalid ${flag} ${v}: 0 or at least 1ms`);
    if (ns) h[field] = ns;
  }
  if (o.healthRetries !== undefined) {
    if (!/^\d{1,6}$/.test(o.healthRetries) || Number(o.healthRetries) > HEALTH_MAX_RETRIES) throw new CliError(`invalid --health-retries ${JSON.stringify(o.healthRetries.slice(0, 32))}: a count, 0 to ${HEALTH_MAX_RETRIES}`);
    if (Number(o.healthRetries)) h.Retries = Number(o.healthRetries);
  }
  return { healthcheck: h };
}
