// Resource flags of run/update → ResourceLimits, through shared/limits (the same rules
// the controller applies), turned into tsctl's one-line errors.
import { parseResourceFlags, LimitError, type Resources } from '../shared/limits.js';
import { CliError } from './client.js';
import type { RunOpts } from './program.js';

export function limitsFromFlags(o: RunOpts): Resources | undefined {
  const flags = {
    '--cpus': o.cpus, '--cpu-shares': o.cpuShares, '--cpuset-cpus': o.cpusetCpus,
    '--memory': o.memory, '--memory-swap': o.memorySwap, '--pids-limit': o.pidsLimit,
  };
  if (Object.values(flags).every((v) => v === undefined)) return undefined;
  try {
    return parseResourceFlags(flags);
  } catch (err) {
    if (err instanceof LimitError) throw new CliError(err.message);
    throw err;
  }
}
