// tsctl top: the processes of a container, read from its cgroup (every task the container
// and its execs have, whatever pid namespace) and /proc, as docker top's default `ps -ef`
// columns. Pure formatting of /proc text is split from the reads so it is unit-tested.
import { readFileSync } from 'node:fs';
import type { TopReply } from '../shared/api/agent.js';

export const TOP_TITLES = ['UID', 'PID', 'PPID', 'STIME', 'TIME', 'CMD'];

/** Pure: one row from /proc/<pid>/{stat,status,cmdline} texts; `hz` clock ticks a second, `boot` ms since the epoch. */
export function topRow(pid: number, stat: string, status: string, cmdline: string, hz: number, boot: number): string[] {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  const ppid = rest[1] ?? '?';
  const ticks = Number(rest[11] ?? 0) + Number(rest[12] ?? 0);
  const secs = Math.floor(ticks / hz);
  const time = `${String(Math.floor(secs / 3600)).padStart(2, '0')}:${String(Math.floor(secs / 60) % 60).padStart(2, '0')}:${String(secs % 60).padStart(2, '0')}`;
  const started = new Date(boot + (Number(rest[19] ?? 0) / hz) * 1000);
  const stime = `${String(started.getUTCHours()).padStart(2, '0')}:${String(started.getUTCMinutes()).padStart(2, '0')}`;
  const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1] ?? '?';
  const cmd = cmdline.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1).join(' ').trim() || `[${comm}]`;
  return [uid, String(pid), ppid, stime, time, cmd];
}

function bootTimeMs(): number {
  const btime = /^btime (\d+)/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1];
  return Number(btime ?? 0) * 1000;
}

/** The rows of these pids; a process that exits meanwhile is left out. */
export function top(pids: number[]): TopReply {
  const boot = bootTimeMs();
  const rows: string[][] = [];
  for (const pid of pids) {
    try {
      rows.push(topRow(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'), readFileSync(`/proc/${pid}/status`, 'utf8'), readFileSync(`/proc/${pid}/cmdline`, 'utf8'), 100, boot));
    } catch { /* gone */ }
  }
  return { titles: TOP_TITLES, processes: rows };
}
