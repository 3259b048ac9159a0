// Image references as docker reads them: [host[:port]/]path[:tag][@sha256:hex]. Pure.

export interface Reference {
  /** host[:port] as typed ("docker.io" when none was). */
  registry: string;
  /** Where the API is: docker.io's is registry-1.docker.io. */
  endpoint: string;
  repository: string;
  tag?: string;
  digest?: string;
  /** The tag or digest to ask the registry for. */
  reference: string;
  /** The image's name in the cluster: the reference as typed, with the tag docker would add. */
  name: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$/;

export class ReferenceError extends Error {
  constructor(readonly ref: string, reason: string) {
    super(`invalid image reference "${ref.slice(0, 300)}": ${reason}`);
    this.name = 'ReferenceError';
  }
}

export function parseReference(s: string): Reference {
  if (s.length > 512) throw new ReferenceError(s, 'longer than 512 characters');
  let rest = s, digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new ReferenceError(s, 'the digest must be sha256:<64 hex>');
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new ReferenceError(s, `invalid tag "${tag}"`);
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  if (parts.length > 1 && (/[.:]/.test(parts[0]) || parts[0] === 'localhost' || parts[0].startsWith('['))) {
    registry = parts.shift()!;
    if (!HOST.test(registry)) throw new ReferenceError(s, `invalid registry host "${registry}"`);
  }
  if (!parts.length || parts.some((p) => !COMPONENT.test(p))) throw new ReferenceError(s, 'a repository path is lower-case letters, digits and . _ - separated by /');
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (!tag && !digest) tag = 'latest';
  const endpoint = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
  const name = `${registry === 'docker.io' ? repository.replace(/^library\//, '') : `${registry}/${repository}`}:${tag ?? `sha256-${digest!.slice(7, 19)}`}`;
  return { registry, endpoint, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}), reference: digest ?? tag!, name };
}

/** Plain http: asked for (--insecure), or a loopback registry, as docker allows without configuration. */
export function schemeFor(host: string, insecure: boolean): 'http' | 'https' {
  if (insecure) return 'http';
  const h = host.replace(/:[0-9]+$/, '');
  return h === 'localhost' || /^127\./.test(h) || h === '[::1]' ? 'http' : 'https';
}
