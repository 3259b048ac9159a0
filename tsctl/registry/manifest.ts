// Manifests of the distribution API: OCI and docker schema 2 image manifests, OCI indexes
// and docker manifest lists (a platform is chosen). Pure: bytes in, descriptors out.

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

/** What we ask for, in order of preference. */
export const ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');

/** containerd's bound: a manifest is metadata; more than this is an attack on memory. */
export const MAX_MANIFEST_BYTES = 4 << 20;

export interface Descriptor {
  mediaType: string; digest: string; size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export type Manifest =
  | { kind: 'index'; manifests: Descriptor[] }
  | { kind: 'image'; config: Descriptor; layers: Descriptor[] };

export type Compression = 'none' | 'gzip';

/** How a layer blob is compressed, or why it cannot be used. */
export function layerCompression(mediaType: string): Compression | string {
  switch (mediaType) {
    case 'application/vnd.oci.image.layer.v1.tar':
    case 'application/vnd.docker.image.rootfs.diff.tar':
      return 'none';
    case 'application/vnd.oci.image.layer.v1.tar+gzip':
    case 'application/vnd.docker.image.rootfs.diff.tar.gzip':
      return 'gzip';
    case 'application/vnd.oci.image.layer.v1.tar+zstd':
      return 'zstd layers are not supported (Node 20 has no zstd): push the image with gzip layers';
    default:
      if (/foreign|nondistributable/.test(mediaType)) return `foreign layer ${mediaType} refused: it is not served by the registry`;
      return `unknown layer media type "${mediaType.slice(0, 100)}"`;
  }
}

function descriptor(v: unknown, what: string): Descriptor | string {
  const d = v as Partial<Descriptor> | null;
  if (!d || typeof d !== 'object') return `${what} is not an object`;
  if (typeof d.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d.digest)) return `${what} has no sha256 digest`;
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) return `${what} has no size`;
  if (typeof d.mediaType !== 'string') return `${what} has no media type`;
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.platform && typeof d.platform === 'object') out.platform = d.platform;
  return out;
}

/** Parses a manifest body; `contentType` is the reply's, used when the body names no mediaType. */
export function parseManifest(bytes: Uint8Array, contentType: string): Manifest | string {
  let m: Record<string, unknown>;
  try { m = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)); } catch { return 'the manifest is not JSON'; }
  if (!m || typeof m !== 'object' || Array.isArray(m)) return 'the manifest is not a JSON object';
  const type = typeof m.mediaType === 'string' ? m.mediaType : contentType.split(';')[0].trim();
  if (m.schemaVersion === 1 || /^application\/vnd\.docker\.distribution\.manifest\.v1\+/.test(type)) return 'docker schema 1 manifests are not supported (push the image again with a current docker or skopeo)';
  if (m.schemaVersion !== 2) return `manifest schemaVersion ${JSON.stringify(m.schemaVersion)} is not 2`;
  if (type === MEDIA.ociIndex || type === MEDIA.dockerList || (!type && Array.isArray(m.manifests))) {
    if (!Array.isArray(m.manifests)) return 'the index has no manifests';
    const manifests: Descriptor[] = [];
    for (const [i, x] of m.manifests.entries()) {
      const d = descriptor(x, `manifests[${i}]`);
      if (typeof d === 'string') return d;
      manifests.push(d);
    }
    return { kind: 'index', manifests };
  }
  if (type === MEDIA.ociManifest || type === MEDIA.dockerManifest || (!type && m.config)) {
    const config = descriptor(m.config, 'config');
    if (typeof config === 'string') return config;
    if (!Array.isArray(m.layers) || !m.layers.length) return 'the manifest has no layers';
    const layers: Descriptor[] = [];
    for (const [i, x] of m.layers.entries()) {
      const d = descriptor(x, `layers[${i}]`);
      if (typeof d === 'string') return d;
      layers.push(d);
    }
    return { kind: 'image', config, layers };
  }
  return `unsupported manifest type "${type.slice(0, 100)}"`;
}

/** Node's process.arch as OCI names it. */
export const ociArch = (arch: string = process.arch): string => ({ x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm' } as Record<string, string>)[arch] ?? arch;

/** The index entry for os/arch (an arm64 variant v8 or none both fit), or undefined. */
export function choosePlatform(manifests: Descriptor[], os: string, arch: string): Descriptor | undefined {
  const fits = manifests.filter((d) => d.platform?.os === os && d.platform?.architecture === arch
    && (d.mediaType === MEDIA.ociManifest || d.mediaType === MEDIA.dockerManifest));
  return fits.find((d) => !d.platform?.variant || (arch === 'arm64' && d.platform.variant === 'v8')) ?? fits[0];
}
