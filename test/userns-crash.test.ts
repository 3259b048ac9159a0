// Fault injection for a user-namespace container's start, which has two steps the kernel
// cannot do at once: the monitor clones the init into its new namespaces, then writes the
// init's uid_map and gid_map from outside while the init waits. The monitor is SIGKILLed
// between the two (SWARMLITE_FAILPOINTS=monitor:userns-before-map). What must hold: the
// init never runs the container's program (unmapped, it would be nobody with a full set of
// namespace capabilities), `create`/`run` fail in one line, nothing stays (no process, no
// container record, no cgroup), and the same id starts cleanly right after. Root only.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultSpec } from '../agent/oci/default-spec.js';
import { cgroupNode } from '../agent/oci/container.js';
import { detect, hierarchies, removeNodeGroup } from '../agent/cgroups/index.js';
import { unless } from './helpers/skip.js';

const t = suite('userns-crash');
const BIN = fileURLToPath(new URL('../../bin/sl-runtime', import.meta.url));
const T = mkdtempSync(join(tmpdir(), 'sl-usx-'));
const ROOT = join(T, 'state');
// a program no other test runs, so a leftover is ours
const MARK = `${4000 + (process.pid % 5000)}`;
const ids: string[] = [];

let seq = 0;
/** sl-runtime with its output in files: a created container holds its stdio open for its life. */
const sl = (args: string[], env: Record<string, string> = {}) => {
  const o = join(T, `out.${seq}`), e = join(T, `err.${seq++}`);
  const fo = openSync(o, 'w'), fe = openSync(e, 'w');
  const r = spawnSync(process.execPath, [BIN, '--root', ROOT, ...args], { stdio: ['ignore', fo, fe], timeout: 60_000, env: { ...process.env, ...env } });
  closeSync(fo); closeSync(fe);
  return { code: r.status ?? -1, out: readFileSync(o, 'utf8'), err: readFileSync(e, 'utf8') };
};
const ours = () => spawnSync('pgrep', ['-f', `^sleep ${MARK}$`], { encoding: 'utf8' }).stdout.trim();
const groups = (id: string) => hierarchies(detect()).map((h) => join(h, 'swarmlite', cgroupNode(ROOT), id)).filter((p) => existsSync(p));

t.before(() => {
  const b = join(T, 'b');
  mkdirSync(join(b, 'rootfs', 'bin'), { recursive: true });
  copyFileSync('/usr/bin/busybox', join(b, 'rootfs', 'bin', 'busybox'));
  for (const a of ['sh', 'sleep']) symlinkSync('busybox', join(b, 'rootfs', 'bin', a));
  const c = defaultSpec() as Record<string, any>;
  c.process.args = ['sleep', MARK];
  const map = [{ containerID: 0, hostID: 100000, size: 65536 }];
  c.linux.namespaces.push({ type: 'user' });
  c.linux.uidMappings = map;
  c.linux.gidMappings = map;
  writeFileSync(join(b, 'config.json'), JSON.stringify(c));
  // the mapped root must reach its rootfs
  chmodSync(T, 0o755);
});

t.after(async () => {
  for (const id of ids) sl(['delete', '--force', id]);
  for (let i = 0; i < 50 && process.getuid?.() === 0; i++) {
    try { removeNodeGroup(detect(), cgroupNode(ROOT)); break; } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  rmSync(T, { recursive: true, force: true });
});

const rootTest = unless(t, process.getuid?.() === 0 ? undefined : 'needs root (user namespaces, cgroups)');

for (const verb of ['run', 'create'] as const) {
  rootTest(`${verb} - the monitor SIGKILLed between the clone and the maps: one line, the program never ran, nothing left, the id starts again`, async () => {
    const id = `usx${process.pid}${verb}`;
    ids.push(id);
    const args = verb === 'run' ? ['run', '-d', '-b', join(T, 'b'), id] : ['create', '-b', join(T, 'b'), id];
    const r = sl(args, { SWARMLITE_FAILPOINTS: 'monitor:userns-before-map' });
    assert.is(r.code, 1, r.out + r.err);
    assert.is(r.err.trim().split('\n').length, 1, r.err);
    assert.match(r.err, new RegExp(`container "${id}": sl-monitor exited without a report`), r.err);
    // the init, left waiting for maps that never come, reads end-of-file and exits without exec
    const end = Date.now() + 10_000;
    while (ours() && Date.now() < end) await new Promise((res) => setTimeout(res, 50));
    assert.is(ours(), '', 'no process of the container');
    assert.is(sl(['state', id]).code, 1, 'no container record');
    assert.equal(groups(id), [], 'no cgroup of the container');
    assert.is(existsSync(ROOT) ? readdirSync(ROOT).filter((n) => n.includes(id)).length : 0, 0, 'nothing under --root');
    // the restart: the same id, the same bundle, without the fault
    const again = sl(args);
    assert.is(again.code, 0, again.err);
    if (verb === 'create') assert.is(sl(['start', id]).code, 0);
    const st = JSON.parse(sl(['state', id]).out) as { status: string; pid: number };
    assert.is(st.status, 'running');
    assert.ok(ours().split('\n').includes(String(st.pid)), 'the program runs, as pid 1 of the container');
    assert.is(sl(['delete', '--force', id]).code, 0);
    assert.equal(groups(id), []);
  });
}

t.run();
