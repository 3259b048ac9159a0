// Which servers of a JetStream cluster its meta group has, from each server's monitoring /jsz.
// nats-server 2.10.27 started with its peers at once now and then leaves one out of that group
// for good (its system-account route carries almost nothing), and every R3 stream is then
// refused "no suitable peers for placement"; a restart of the server left out brings it in.
// ops/fleet and the tests' three-server setup decide with this who to restart.

export interface Jsz { meta_cluster?: { leader?: string; replicas?: { name: string; current?: boolean; offline?: boolean }[] } }

/**
 * Pure: the leader (a server whose own answer names itself), the members (it and its current
 * followers) and the servers left out; no leader yet, nobody is out.
 */
export function metaGroup(jsz: ReadonlyMap<string, Jsz | undefined>): { leader?: string; members: string[]; out: string[] } {
  const found = [...jsz].find(([name, j]) => j?.meta_cluster?.leader === name);
  if (!found) return { members: [], out: [] };
  const [leader, j] = found;
  const members = [leader, ...(j!.meta_cluster!.replicas ?? []).filter((r) => r.current && !r.offline).map((r) => r.name)];
  return { leader, members, out: [...jsz.keys()].filter((name) => !members.includes(name)) };
}
