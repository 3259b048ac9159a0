// tsctl driven under a REAL pty (python3's pty/termios, test/helpers/pty-drive.py), as a user
// at a terminal: typed keys, window resizes, the local terminal's state before and after.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './cluster.js';

export type Step = { expect: string; timeout?: number } | { send: string } | { resize: [number, number] } | { sleep: number }
  | { waitFile: string; timeout?: number } | { touch: string };
export interface Drive { output: string; code: number | null; failed: unknown; stty_before: string; stty_after: string }

/** tsctl ARGS under a fresh pty of ROWS x COLS, typed at as `steps` say, as the user of `creds`. */
export function drive(cluster: { url: string; adminCreds: string }, args: string[], steps: Step[], size: [number, number] = [30, 100], creds = cluster.adminCreds): Promise<Drive> {
  return new Promise((resolve, reject) => {
    const p = spawn('python3', [join(ROOT, 'test/helpers/pty-drive.py'), String(size[0]), String(size[1]), JSON.stringify(steps), '--',
      process.execPath, join(ROOT, 'bin/tsctl.cjs'), ...args], { env: { ...process.env, SWARMLITE_NATS: cluster.url, SWARMLITE_CREDS: creds } });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      try { resolve(JSON.parse(out) as Drive); } catch { reject(new Error(`pty-drive exited ${code}: ${err.trim() || out.slice(0, 400)}`)); }
    });
  });
}
