// Named points where a fault-injection test kills the agent or tsctl (SIGKILL, as a crash would),
// chosen with SWARMLITE_FAILPOINTS=name[,name…]. Unset, a check is one lookup.
const armedSet = new Set((process.env.SWARMLITE_FAILPOINTS ?? '').split(',').filter(Boolean));

export function failpoint(name: string): void {
  if (armedSet.size && armedSet.has(name)) process.kill(process.pid, 'SIGKILL');
}

/** For a failpoint that must do something first (write half a record) before it kills. */
export function armed(name: string): boolean {
  return armedSet.size > 0 && armedSet.has(name);
}
