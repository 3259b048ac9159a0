// run/create's flags for the container's life after its start: --restart, --stop-signal,
// --stop-timeout. Declared and translated here; the run command only adds them.
import type { Command } from 'commander';
import type { RunRequest } from '../shared/api/controller.js';
import { parseRestartPolicy, RestartPolicyError } from '../shared/restart-policy.js';
import { signalName, SignalError } from '../shared/signals.js';
import { CliError } from './client.js';

export interface LifecycleFlags { restart?: string; stopSignal?: string; stopTimeout?: string }

export function lifecycleFlags(c: Command): Command {
  return c
    .option('--restart <policy>', 'start it again after an exit: no, on-failure[:N], always, unless-stopped')
    .option('--stop-signal <sig>', 'the signal stop and restart send first (default: the image\'s, else TERM)')
    .option('--stop-timeout <seconds>', 'seconds stop and restart wait before KILL (default 10)');
}

/** The flags as the run request has them; a bad value is one line naming the flag. */
export function lifecycleRequest(o: LifecycleFlags & { rm?: boolean }): Pick<RunRequest, 'restartPolicy' | 'stopSignal' | 'stopTimeout'> {
  let restartPolicy;
  if (o.restart !== undefined) {
    try { restartPolicy = parseRestartPolicy(o.restart); } catch (err) {
      if (err instanceof RestartPolicyError) throw new CliError(err.message);
      throw err;
    }
    if (restartPolicy.name !== 'no' && o.rm) throw new CliError(`conflicting options: --restart ${o.restart} and --rm (a container removed at its exit is not started again)`);
  }
  let stopSignal: string | undefined;
  if (o.stopSignal !== undefined) {
    try { stopSignal = signalName(o.stopSignal); } catch (err) {
      if (err instanceof SignalError) throw new CliError(`invalid --stop-signal ${JSON.stringify(o.stopSignal.slice(0, 32))}: use a name like INT or TERM, or a number`);
      throw err;
    }
  }
  return {
    ...(restartPolicy && restartPolicy.name !== 'no' ? { restartPolicy } : {}),
    ...(stopSignal ? { stopSignal } : {}),
    ...(o.stopTimeout !== undefined ? { stopTimeout: seconds('--stop-timeout', o.stopTimeout) } : {}),
  };
}

/** Whole seconds, 0 to a day (stop -t, restart -t, --stop-timeout). */
export function seconds(flag: string, v: string): number {
  if (!/^[0-9]{1,5}$/.test(v) || Number(v) > 86400) throw new CliError(`invalid ${flag} ${JSON.stringify(v.slice(0, 32))}: whole seconds, 0 to 86400`);
  return Number(v);
}
