// When a long-lived connection goes back to its host's own server (shared/nats/home.ts): pure parts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { shouldReturn } from '../shared/nats/home.js';
import { hostOf, ownUrls, serverOrder } from '../shared/nats/trust.js';

test('home - the own servers are those at one of the host\'s addresses', () => {
  const urls = ['tls://10.1.0.1:4222', 'tls://10.1.0.2:4222', 'nats://[fd00::3]:4222', 'h4:4222'];
  assert.equal(ownUrls(urls, new Set(['10.1.0.2'])), ['tls://10.1.0.2:4222']);
  assert.equal(ownUrls(urls, new Set(['fd00::3'])), ['nats://[fd00::3]:4222']);
  assert.equal(ownUrls(urls, new Set(['h4'])), ['h4:4222']);
  assert.equal(ownUrls(urls, new Set(['10.1.0.9'])), []);
  assert.is(hostOf('not a url at all:::'), '');
  // the order dials them first
  assert.equal(serverOrder(urls, new Set(['10.1.0.2']), () => 0)[0], 'tls://10.1.0.2:4222');
});

test('home - goes back only to a server that leads the log or is a current replica of it', () => {
  const log = (leader: string, ...replicas: [string, boolean, boolean?][]) => ({ leader, replicas: replicas.map(([name, current, offline]) => ({ name, current, offline })) });
  // on another host's server, its own caught up: back
  assert.ok(shouldReturn('h1', 'h2', log('h2', ['h1', true], ['h3', true])));
  assert.ok(shouldReturn('h1', 'h2', log('h1', ['h2', true], ['h3', true])));
  // its own still catching up after its restart, or offline: not yet
  assert.not.ok(shouldReturn('h1', 'h2', log('h2', ['h1', false], ['h3', true])));
  assert.not.ok(shouldReturn('h1', 'h2', log('h2', ['h1', true, true], ['h3', true])));
  // already there, or nothing known
  assert.not.ok(shouldReturn('h1', 'h1', log('h2', ['h1', true], ['h3', true])));
  assert.not.ok(shouldReturn(undefined, 'h2', log('h2', ['h1', true])));
  assert.not.ok(shouldReturn('h1', undefined, log('h2', ['h1', true])));
  // no leader (an election): not now
  assert.not.ok(shouldReturn('h1', 'h2', { replicas: [{ name: 'h1', current: true }] }));
  assert.not.ok(shouldReturn('h1', 'h2', undefined));
  // a server that is no peer of the log (an R1 log on another host)
  assert.not.ok(shouldReturn('h4', 'h2', log('h2', ['h1', true], ['h3', true])));
});

test.run();
