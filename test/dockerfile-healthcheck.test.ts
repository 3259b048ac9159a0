// HEALTHCHECK in a Dockerfile (tsctl/dockerfile-healthcheck.ts, applied by tsctl/build.ts): the
// forms docker takes into the image config's Healthcheck (its field names, ns), the ones it
// refuses with one line naming the line, and the config a build step makes. No root, no cluster.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DockerfileError, parseDockerfile } from '../tsctl/dockerfile.js';
import { parseHealthcheck } from '../tsctl/dockerfile-healthcheck.js';
import { applyMetadata, checkInstructions, type ImageConfig } from '../tsctl/build.js';

const one = (src: string) => parseHealthcheck(parseDockerfile(`FROM x\n${src}\n`)[1]!);
const refused = (src: string): string => {
  try { checkInstructions(parseDockerfile(`FROM x\n${src}\n`)); } catch (err) {
    assert.instance(err, DockerfileError);
    assert.is((err as DockerfileError).line, 2);
    assert.not.match((err as Error).message, /\n/);
    return (err as Error).message;
  }
  throw new Error(`accepted: ${src}`);
};

test('healthcheck - shell form is CMD-SHELL with the text as written, no flags: no durations', () => {
  assert.equal(one('HEALTHCHECK CMD curl -f http://localhost/ || exit 1'), { Test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'] });
  // docker expands no variable in it: the shell in the container does
  assert.equal(one('healthcheck cmd test -e $HOME/ok'), { Test: ['CMD-SHELL', 'test -e $HOME/ok'] });
});

test('healthcheck - exec form is CMD and its words', () => {
  assert.equal(one('HEALTHCHECK CMD ["/bin/check", "--quick", "a b"]'), { Test: ['CMD', '/bin/check', '--quick', 'a b'] });
});

test('healthcheck - flags in ns (Go durations) and retries', () => {
  assert.equal(one('HEALTHCHECK --interval=5s --timeout=1m30s --start-period=500ms --start-interval=1.5s --retries=7 CMD true'), {
    Test: ['CMD-SHELL', 'true'], Interval: 5e9, Timeout: 90e9, StartPeriod: 5e8, StartInterval: 1.5e9, Retries: 7,
  });
  // 0 is docker's "the default": nothing stored
  assert.equal(one('HEALTHCHECK --interval=0 --retries=0 CMD true'), { Test: ['CMD-SHELL', 'true'] });
});

test('healthcheck - NONE switches a base image\'s check off', () => {
  assert.equal(one('HEALTHCHECK NONE'), { Test: ['NONE'] });
  const cfg: ImageConfig = { config: { Healthcheck: { Test: ['CMD-SHELL', 'true'] } }, rootfs: { type: 'layers', diff_ids: [] } };
  const [, ins] = parseDockerfile('FROM x\nHEALTHCHECK NONE\n');
  applyMetadata(cfg, ins!, ins!.text, false);
  assert.equal(cfg.config.Healthcheck, { Test: ['NONE'] });
});

test('healthcheck - a build step puts it in the config; a later one replaces it', () => {
  const cfg: ImageConfig = { config: {}, rootfs: { type: 'layers', diff_ids: [] } };
  const l = parseDockerfile('FROM x\nHEALTHCHECK --retries=2 CMD a\nHEALTHCHECK --interval=1s CMD ["b"]\n');
  checkInstructions(l);
  applyMetadata(cfg, l[1]!, l[1]!.text, false);
  assert.equal(cfg.config.Healthcheck, { Test: ['CMD-SHELL', 'a'], Retries: 2 });
  applyMetadata(cfg, l[2]!, l[2]!.text, false);
  assert.equal(cfg.config.Healthcheck, { Test: ['CMD', 'b'], Interval: 1e9 });
});

test('healthcheck - malformed forms are one line naming the line', () => {
  assert.match(refused('HEALTHCHECK'), /HEALTHCHECK needs an argument/);
  assert.match(refused('HEALTHCHECK CMD'), /missing command after HEALTHCHECK CMD/);
  assert.match(refused('HEALTHCHECK RUN true'), /unknown type "RUN" in HEALTHCHECK/);
  assert.match(refused('HEALTHCHECK NONE now'), /NONE takes no arguments/);
  assert.match(refused('HEALTHCHECK --interval=5s NONE'), /NONE takes no flags/);
  assert.match(refused('HEALTHCHECK CMD ["a", 1]'), /not a JSON array of strings/);
  assert.match(refused('HEALTHCHECK CMD []'), /needs a command/);
  assert.match(refused('HEALTHCHECK --interval=5 CMD true'), /--interval="5": a duration/);
  assert.match(refused('HEALTHCHECK --interval=-1s CMD true'), /--interval="-1s"/);
  assert.match(refused('HEALTHCHECK --interval=25h CMD true'), /at most 24h/);
  assert.match(refused('HEALTHCHECK --timeout=10us CMD true'), /cannot be less than 1ms/);
  assert.match(refused('HEALTHCHECK --retries=x CMD true'), /--retries="x": a count/);
  assert.match(refused('HEALTHCHECK --retries=-1 CMD true'), /--retries="-1"/);
  assert.match(refused('HEALTHCHECK --interval 5s CMD true'), /--interval="": a duration/);
  assert.match(refused('HEALTHCHECK --every=5s CMD true'), /HEALTHCHECK --every: unknown flag/);
  // junk bytes in a flag are quoted, never printed raw
  assert.not.match(refused('HEALTHCHECK --interval=\u001b[31m CMD true'), /\u001b\[31m CMD/);
});

test('healthcheck - other instructions still refuse its flags', () => {
  assert.match(refused('RUN --interval=5s true'), /RUN --interval: unknown flag/);
});

test.run();
