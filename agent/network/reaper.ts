// Link deletion in batches. Unregistering a link makes the kernel wait for an RCU grace
// period under the RTNL lock (15-30 ms a veth here), so deletions made one by one run one
// after another whatever the agent does, however many workers it uses. A group delete
// (`ip link del group G`) unregisters every link of the group as one batch, one wait for all:
// links asked for while a batch runs are marked with the agent's group and go in the next one.
// The sendto runs on a libuv worker, so the event loop (and every start) goes on meanwhile.
import { createHash } from 'node:crypto';
import { NetlinkError, NetlinkSocket } from '../../native/netlink.js';
import * as msg from './netlink-msg.js';
import { Rounds } from '../rounds.js';

const ENODEV = 19;

/**
 * The link group this agent's deletions use: 0x5357xxxx ("SW"), the low half from the link
 * prefix, so agents of two nodes on one host use different groups. Only links about to be
 * deleted are ever put in it; a link of another owner lands there only if someone else picks
 * the same number, which is why a failed group delete falls back to deleting by name.
 */
export function reapGroup(prefix: string): number {
  return (0x53570000 | createHash('sha256').update(prefix).digest().readUInt16BE(0)) >>> 0;
}

/** Pure: the requests of one batch, group marks then the group delete. */
export function reapRequests(names: string[], group: number): { msg: Buffer; op: string; target: string }[] {
  return [
    ...names.map((n) => ({ msg: msg.setLinkGroupByName(n, group), op: 'RTM_SETLINK', target: `${n} group ${group}` })),
    { msg: msg.deleteLinkGroup(group), op: 'RTM_DELLINK', target: `group ${group}` },
  ];
}

export class LinkReaper {
  private readonly rounds = new Rounds<string>((names) => this.flush(names));
  /** Batches flushed and links in them (for tests and benchmarks). */
  readonly stats = { batches: 0, links: 0 };

  constructor(private readonly group: number, private readonly open: () => NetlinkSocket = () => NetlinkSocket.open()) {}

  /** Resolves once none of `names` exists any more (ones already gone are fine). */
  delete(names: string[]): Promise<void> {
    return this.rounds.add(names);
  }

  /** One batch on a socket of its own; returns the links that could not be deleted. */
  private async flush(names: string[]): Promise<Map<string, Error>> {
    this.stats.batches++;
    this.stats.links += names.length;
    const failed = new Map<string, Error>();
    const s = this.open();
    try {
      const out = await s.batchSettledAsync(reapRequests(names, this.group));
      const marked: string[] = [];
      names.forEach((n, i) => {
        const r = out[i]!;
        if (!(r instanceof NetlinkError)) marked.push(n);
        else if (r.errno !== ENODEV) failed.set(n, r); // ENODEV: gone already (a half-made pair's peer)
      });
      const del = out[names.length]!;
      if (del instanceof NetlinkError && del.errno !== ENODEV) {
        // something in the group cannot be deleted that way (another owner's device took our
        // number): the marked links one by one instead
        for (const n of marked) {
          const [r] = await s.batchSettledAsync([{ msg: msg.deleteLinkByName(n), op: 'RTM_DELLINK', target: n }]);
          if (r instanceof NetlinkError && r.errno !== ENODEV) failed.set(n, r);
        }
      }
      return failed;
    } finally { s.close(); }
  }
}
