// The link reaper against the kernel (root), in a network namespace this test makes: links
// asked for at once go in few group deletes and are all gone; links nobody asked for stay;
// a device that cannot be deleted by group (lo, put in the group by someone else) makes the
// batch fall back to names, and lo survives.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { NetlinkSocket } from '../native/netlink.js';
import { LinkReaper, reapGroup } from '../agent/network/reaper.js';

const t = suite('reaper-real');
const tag = randomBytes(2).toString('hex');
const ns = `swlr${tag}`;
const nsPath = `/run/netns/${ns}`;
const ip = (...a: string[]) => execFileSync('ip', ['-n', ns, ...a], { encoding: 'utf8' });
const links = () => ip('-o', 'link', 'show').split('\n').map((l) => l.split(': ')[1]?.split('@')[0] ?? '').filter(Boolean);
const group = reapGroup(`swlr${tag}`);
const reaper = () => new LinkReaper(group, () => NetlinkSocket.open(nsPath));

const root = process.getuid?.() === 0;
t.before(() => { if (root) execFileSync('ip', ['netns', 'add', ns]); });
t.after(() => { spawnSync('ip', ['netns', 'del', ns]); });

if (!root) {
  console.log('reaper-real: SKIPPED (not run): needs root to make a network namespace and links');
} else {
  t('reaper-real - 40 pairs deleted by 40 concurrent calls: all gone, in far fewer group deletes, a bystander stays', async () => {
    for (let i = 0; i < 40; i++) ip('link', 'add', `a${i}`, 'type', 'veth', 'peer', 'name', `b${i}`);
    ip('link', 'add', 'keep0', 'type', 'veth', 'peer', 'name', 'keep1');
    const r = reaper();
    await Promise.all(Array.from({ length: 40 }, (_, i) => r.delete([`a${i}`, `b${i}`])));
    const left = links();
    assert.equal(left.filter((n) => /^[ab]\d+$/.test(n)), []);
    assert.ok(left.includes('keep0') && left.includes('keep1'), left.join(' '));
    assert.ok(r.stats.batches < 40 && r.stats.batches >= 1, `batches ${r.stats.batches}`);
    assert.is(r.stats.links, 80);
  });

  t('reaper-real - names already gone (a half-made pair\'s peer) are fine; an empty batch too', async () => {
    ip('link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 'c1');
    const r = reaper();
    await r.delete(['c0', 'nosuchlink']);
    await r.delete(['nosuchlink2']);
    assert.ok(!links().includes('c0') && !links().includes('c1'));
  });

  t('reaper-real - a device of the group that has no delete (lo): fallback by name, lo untouched', async () => {
    ip('link', 'set', 'lo', 'group', String(group));
    try {
      ip('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1');
      await reaper().delete(['d0']);
      const left = links();
      assert.ok(!left.includes('d0') && !left.includes('d1'), left.join(' '));
      assert.ok(left.includes('lo'));
    } finally { ip('link', 'set', 'lo', 'group', '0'); }
  });
}

t.run();
