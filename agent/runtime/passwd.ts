// `run --user user[:group]` and `--group-add`, resolved against the image's own /etc/passwd
// and /etc/group before the container starts, as docker's daemon does (an exec's user is
// resolved in the container by the monitor, monitor_user.c, with the same rules: runc's
// GetExecUser). Pure: the caller reads the files (under the container's root, links kept in it).
//   - a numeric user need not exist (gid 0, home "/" then); a name must;
//   - a group, given, is a number or a name that must exist; otherwise the user's own gid;
//   - supplementary groups: every group that lists the user's name, then --group-add's.

export interface ResolvedUser { uid: number; gid: number; additionalGids: number[]; home: string }

export class UserError extends Error {
  constructor(message: string) { super(message); this.name = 'UserError'; }
}

const MAX_ID = 0xfffffffe;
const numeric = (s: string): number | undefined => (/^\d{1,10}$/.test(s) && Number(s) <= MAX_ID ? Number(s) : undefined);

interface Row { name: string; id: number; rest: string[] }
function rows(text: string, idField: number): Row[] {
  const out: Row[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    const id = numeric(f[idField] ?? '');
    if (!f[0] || id === undefined) continue;
    out.push({ name: f[0], id, rest: f });
  }
  return out;
}

export function resolveUser(spec: string, passwd: string, group: string, groupAdd: string[] = []): ResolvedUser {
  const [u, g] = spec.split(':', 2) as [string, string | undefined];
  const users = rows(passwd, 2);
  const groups = rows(group, 2);
  const byName = users.find((r) => r.name === u);
  const uid = byName?.id ?? numeric(u);
  if (uid === undefined) throw new UserError(`unable to find user ${u}: no matching entries in passwd file`);
  const entry = byName ?? users.find((r) => r.id === uid);
  let gid = entry ? numeric(entry.rest[3] ?? '') ?? 0 : 0;
  const groupId = (name: string, what: string) => {
    const n = groups.find((r) => r.name === name)?.id ?? numeric(name);
    if (n === undefined) throw new UserError(`unable to find group ${name}: no matching entries in group file${what}`);
    return n;
  };
  if (g !== undefined && g !== '') gid = groupId(g, '');
  const extra = entry ? groups.filter((r) => (r.rest[3] ?? '').split(',').includes(entry.name)).map((r) => r.id) : [];
  for (const a of groupAdd) extra.push(groupId(a, ' (--group-add)'));
  return { uid, gid, additionalGids: [...new Set(extra)], home: entry?.rest[5] || '/' };
}
