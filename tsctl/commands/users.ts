// Identities of the cluster (shared/nats/trust.ts): add, remove, list. These edit the
// server's config on the host that runs nats-server and make it reload; the files are
// root's, and tsctl also asks for admin credentials, so only the cluster's admin can.
import { dirname, join } from 'node:path';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { CliError } from '../client.js';
import type { Actions } from '../program.js';
import { identity, json, nc, out } from '../session.js';
import { durableOf, STREAM } from '../../shared/subjects.js';

async function trust() { return import('../../shared/nats/trust.js'); }

/** The state dir whose identities to edit: --state-dir, else the one the admin creds came from. */
function stateOf(flag: string | undefined): string {
  const me = identity();
  if (!me || me.kind !== 'user' || me.role !== 'admin') throw new CliError(`permission denied: managing users needs admin credentials${me ? ` ("${me.name}" is ${me.role ?? me.kind})` : ''}`);
  return flag ?? dirname(dirname(me.ca));
}

/** A state dir whose identities may be edited here: not a mirror's (its next record would undo the edit). */
async function truthOf(flag: string | undefined): Promise<string> {
  const state = stateOf(flag);
  const { mirrorMarker } = await trust();
  if (existsSync(mirrorMarker(state))) throw new CliError(`this server mirrors the cluster's identities from the controller's host (${mirrorMarker(state)}): run tsctl user / node token there`);
  return state;
}

export const userCommands: Pick<Actions, 'userAdd' | 'userRm' | 'userLs' | 'nodeToken' | 'join'> = {
  async nodeToken(o) {
    const t = await trust();
    const { parseDuration } = await import('../requests.js');
    const ttl = o.ttl === undefined ? t.DEFAULT_JOIN_TTL_MS : parseDuration(o.ttl, '--ttl');
    const state = await truthOf(o.stateDir);
    try {
      const { token } = t.makeJoinToken(state, ttl);
      t.reloadServer(state);
      out(token);
    } catch (err) { throw new CliError((err as Error).message); }
  },
  async join(token, o) {
    const t = await trust();
    const { call } = await import('../../shared/nats/rpc.js');
    const { controllerApi } = await import('../../shared/api/controller.js');
    const { dial } = await import('../client.js');
    let parsed;
    try { parsed = t.parseJoinToken(token); } catch (err) { throw new CliError((err as Error).message); }
    // the controller checks it too; this only saves a round trip and says it plainly
    if (parsed.expires !== undefined && parsed.expires <= Date.now()) throw new CliError(`join: this join token expired at ${new Date(parsed.expires).toISOString()} (tsctl node token makes a new one)`);
    // the CA first: the token's connection checks the server against it
    const dir = t.trustDir(o.stateDir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 'ca.pem'), parsed.ca);
    let nc;
    try { nc = await dial(process.env.SWARMLITE_NATS, { ...parsed.creds, ca: join(dir, 'ca.pem') }); } catch (err) {
      // a used, pruned or revoked token is no longer in the server's config
      if (/refused the credentials/.test((err as Error).message)) throw new CliError('join: the cluster refused this join token: it was used, expired or revoked (tsctl node token makes a new one)');
      throw err;
    }
    try {
      const r = await call(nc, `api.${parsed.creds.name}`, controllerApi.join, { node: o.node }, 15000);
      out(t.writeJoinedCreds(o.stateDir, r.creds, parsed.ca));
    } catch (err) {
      throw new CliError(`join: ${(err as Error).message}`);
    } finally { await nc.close().catch(() => undefined); }
  },
  async userAdd(name, o) {
    const t = await trust();
    if (!(t.ROLES as readonly string[]).includes(o.role)) throw new CliError(`invalid --role "${o.role}": admin, operator or viewer`);
    const state = await truthOf(o.stateDir);
    if (t.identities(state).some((i) => i.name === name)) throw new CliError(`"${name}" exists already (tsctl user rm ${name} first)`);
    try {
      const file = t.addIdentity(state, { name, kind: 'user', role: o.role as 'admin' });
      t.reloadServer(state);
      out(file);
    } catch (err) { throw new CliError((err as Error).message); }
  },
  async userRm(names, o) {
    const t = await trust();
    const state = await truthOf(o.stateDir);
    const ids = t.identities(state);
    // all or nothing: a typo among the names must not leave the others half revoked
    const unknown = names.find((n) => !ids.some((i) => i.name === n));
    if (unknown !== undefined) throw new CliError(`no such identity "${unknown}": nothing was removed`);
    // A node's durable is denied to every other identity only while the node is one
    // (shared/nats/trust.ts durableDeny), and other agents may pull from any consumer they can
    // name: the grants without the node would open what it still holds of the node's desired
    // events (environments: secrets) to them. So it goes first, while identities.json (which the
    // controller publishes to every server as soon as it changes) still names the node; a node
    // that joins again under the name is handed its desired events from the log's start.
    for (const i of ids) {
      if (i.kind !== 'agent' || !i.node || !names.includes(i.name)) continue;
      try { await (await (await nc()).jetstreamManager()).consumers.delete(STREAM, durableOf(i.node)); } catch (err) {
        if (/consumer not found/i.test((err as Error).message)) continue;
        const why = (err as Error).message.split('\n')[0];
        throw new CliError(`node ${i.node}'s durable ${durableOf(i.node)} could not be deleted, so nothing was revoked (its grants still deny it to others): ${why}`);
      }
    }
    try {
      t.removeIdentities(state, names);
      // the server closes the removed identities' connections on reload: revocation is immediate
      t.reloadServer(state);
    } catch (err) { throw new CliError((err as Error).message); }
    for (const n of names) out(n);
  },
  async userLs(o) {
    const t = await trust();
    const ids = t.identities(stateOf(o.stateDir)).map(({ name, kind, role, node }) => ({ name, kind, ...(role ? { role } : {}), ...(node ? { node } : {}) }));
    if (o.format === 'json') out(json(ids));
    else for (const i of ids) out(`${i.name.padEnd(24)} ${i.kind.padEnd(10)} ${i.role ?? i.node ?? ''}`);
  },
};
