// Named points where a fault-injection test kills the agent (SIGKILL, as a crash would),
// chosen with SWARMLITE_FAILPOINTS=name[,name…]. Unset, a check is one lookup.
const armed = new Set((process.env.SWARMLITE_FAILPOINTS ?? '').split(',').filter(Boolean));

export function failpoint(name: string): void {
  if (armed.size && armed.has(name)) process.kill(process.pid, 'SIGKILL');
}
