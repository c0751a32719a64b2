/**
 * Where the Web API lives below the organization URL: `/<org>/api/data/v9.0/` (9.1 also answers
 * `v9.1`). Returns the version and the resource below the service root, percent-decoded.
 */
export interface ApiPath {
  version: string;
  resource: string;
}

export function matchApiPath(pathname: string, orgName: string): ApiPath | undefined {
  const m = /^\/([^/]+)\/api\/data\/(v9\.[01])(?:\/(.*))?$/i.exec(pathname);
  if (!m) return undefined;
  let org: string;
  let resource: string;
  try {
    org = decodeURIComponent(m[1] ?? '');
    resource = decodeURIComponent(m[3] ?? '');
  } catch {
    return undefined;
  }
  if (org.toLowerCase() !== orgName.toLowerCase()) return undefined;
  return { version: (m[2] ?? 'v9.0').toLowerCase(), resource };
}

/** The service root for a version: `http://host:port/<org>/api/data/v9.0/`. */
export function serviceRootOf(orgUrl: string, version: string): string {
  return `${orgUrl}/api/data/${version}/`;
}
