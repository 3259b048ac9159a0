// Runs only in the cgroup v2 lane (ops/vm-lane): the README's first command, ops/quickstart,
// on a fresh pure-v2 Debian 12 host, then ops/down and nothing left behind. Not in the
// main suite: it takes the default state dir /var/lib/swarmlite, port 4222 and the global
// tsctl link, which belong to the developer's machine outside the VM.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, SLOW } from '../helpers/cluster.js';

const run = (cmd: string, args: string[] = []) => spawnSync(join(ROOT, cmd), args, { cwd: ROOT, encoding: 'utf8', timeout: 300_000 * SLOW });

test('quickstart - ops/quickstart: a one-host cluster and a first container; ops/down leaves nothing', () => {
  if (process.env.SWARMLITE_VM !== '1') assert.unreachable('runs only inside the VM of ops/vm-lane (it uses /var/lib/swarmlite and port 4222)');
  try {
    const q = run('ops/quickstart');
    process.stdout.write(q.stdout.trimEnd().replace(/^/gm, '  | ') + '\n');
    assert.is(q.status, 0, `ops/quickstart exited ${q.status}: ${q.stderr}`);
    assert.match(q.stdout, /^swarmlite up: node swarmlite-vm, nats nats:\/\/127\.0\.0\.1:4222 \(TLS, nkey users\), state \/var\/lib\/swarmlite/m);
    assert.match(q.stdout, /^hello from [0-9a-f]{12}$/m);
    assert.match(q.stdout, /^PID\s+USER\s+COMMAND\n\s+1 root\s+.*sh -c echo hello from \$\(hostname\); ps\n?$/m);
    const nodes = spawnSync('tsctl', ['nodes'], { encoding: 'utf8', env: { ...process.env, SWARMLITE_NATS: 'nats://127.0.0.1:4222' } });
    assert.is(nodes.status, 0, nodes.stderr);
    assert.match(nodes.stdout, /^swarmlite-vm\s/m);
  } finally {
    const d = run('ops/down');
    process.stdout.write(d.stdout.trimEnd().replace(/^/gm, '  | ') + '\n');
    assert.is(d.status, 0, `ops/down exited ${d.status}: ${d.stderr}`);
  }
  assert.not.ok(existsSync('/var/lib/swarmlite'), 'state dir left');
  assert.not.ok(existsSync('/sys/fs/cgroup/swarmlite/swarmlite-vm'), 'node cgroup left');
  // (the project itself is mounted at /swarmlite in the VM)
  assert.not.match(readFileSync('/proc/mounts', 'utf8'), /\/var\/lib\/swarmlite/, 'a mount left');
  const nft = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' });
  assert.not.match(nft.stdout, /swarmlite|swl/, `nft tables left: ${nft.stdout}`);
});

test.run();
