import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { metaGroup, type Jsz } from '../shared/nats/meta-group.js';
import { ROOT } from './helpers/cluster.js';

const t = suite('meta-group');
const lead = (name: string, replicas: { name: string; current?: boolean; offline?: boolean }[]): Jsz => ({ meta_cluster: { leader: name, replicas } });
const follower = (leader: string): Jsz => ({ meta_cluster: { leader } });

t('meta-group - the leader sees both others current: nobody out', () => {
  const g = metaGroup(new Map([['h1', follower('h2')], ['h2', lead('h2', [{ name: 'h1', current: true }, { name: 'h3', current: true }])], ['h3', follower('h2')]]));
  assert.equal(g, { leader: 'h2', members: ['h2', 'h1', 'h3'], out: [] });
});

t('meta-group - a server the leader does not list, lists as behind or offline, or that did not answer is out', () => {
  const three = (r: { name: string; current?: boolean; offline?: boolean }[], h3: Jsz | undefined = follower('h1')) => metaGroup(new Map([['h1', lead('h1', r)], ['h2', follower('h1')], ['h3', h3]]));
  assert.equal(three([{ name: 'h2', current: true }]).out, ['h3']); // the group stayed at two (the 2.10.27 fault)
  assert.equal(three([{ name: 'h2', current: true }, { name: 'h3', current: false }]).out, ['h3']);
  assert.equal(three([{ name: 'h2', current: true }, { name: 'h3', current: true, offline: true }]).out, ['h3']);
  assert.equal(three([{ name: 'h2', current: true }], undefined).out, ['h3']);
});

t('meta-group - no leader yet (or only one named by others): nobody is restarted', () => {
  assert.equal(metaGroup(new Map([['h1', follower('h2')], ['h2', undefined], ['h3', {}]])), { members: [], out: [] });
  assert.equal(metaGroup(new Map()), { members: [], out: [] });
});

t('meta-group - the CLI ops/fleet runs: junk and empty bodies are servers that did not answer', () => {
  const input = ['h1\t' + JSON.stringify(lead('h1', [{ name: 'h2', current: true }])), 'h2\t{"meta_cluster":', 'h3\t', 'h4\t\u0000\u00ff junk'].join('\n');
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/shared/nats/meta-group-cli.js')], { input, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  // h2's own answer is junk, but the leader counts it current: the leader's word decides
  assert.is(r.stdout, 'h3 h1\nh4 h1\n');
  const none = spawnSync(process.execPath, [join(ROOT, 'dist/shared/nats/meta-group-cli.js')], { input: 'junk without a tab\n', encoding: 'utf8' });
  assert.is(none.status, 0, none.stderr);
  assert.is(none.stdout, '');
});

t.run();
