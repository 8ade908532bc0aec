/**
 * Paths, MLflow routes and notebook lines built from item ids. Ids hold `/`, so each
 * segment is encoded on its own; names that are not plain words are quoted.
 */
import { apiUrl } from './request';

/** The API path of one item (ids hold `/`: each segment is encoded on its own). */
export function itemPath(collection: string, id: string): string {
  const segments = id.split('/').map(encodeURIComponent).join('/');
  return `sharinghub/api/stac/collections/${encodeURIComponent(collection)}/items/${segments}`;
}

/** `(collection, id)` of a link to another item of this catalog, or null. */
export function linkedItem(href: string): { collection: string; id: string } | null {
  const m = /\/sharinghub\/api\/stac\/collections\/([^/]+)\/items\/(.+?)\/?(?:[?#].*)?$/.exec(
    href
  );
  if (!m) {
    return null;
  }
  return {
    collection: decodeURIComponent(m[1]),
    id: m[2].split('/').map(decodeURIComponent).join('/')
  };
}

/** A name as the shell-like `%sharinghub` line takes it: plain, or single-quoted. */
function quote(s: string): string {
  return /^[\w./:@-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

/** The `%sharinghub` line that pulls `rev` of `item` (rev omitted = default branch). */
export function pullSnippet(item: string, rev?: string): string {
  return `%sharinghub pull ${quote(item)}${rev ? ` --rev ${quote(rev)}` : ''}`;
}

/**
 * The item header's snippet: a model is tracked (`%sharinghub track`), anything
 * else is pulled, at `latestRev` once the versions are known.
 */
export function itemSnippet(collection: string | undefined, item: string, latestRev?: string): string {
  return collection === 'ai-model' ? `%sharinghub track ${quote(item)}` : pullSnippet(item, latestRev);
}

/** The MLflow UI at `route` (e.g. `#/models`), served under Jupyter's base URL. */
export function mlflowUrl(route = ''): string {
  return apiUrl('sharinghub/mlflow/') + route;
}

/** The MLflow UI route of a registered model version (`models:/<name>/<version>`). */
export function mlflowRoute(uri: string): string {
  const m = /^models:\/(.+)\/(\d+)$/.exec(uri);
  return m ? `#/models/${encodeURIComponent(m[1])}/versions/${m[2]}` : '#/models';
}

/**
 * The name of the version after the newest tag that looks like one (`v1.2` → `v1.3`,
 * `2.0.9` → `2.0.10`); `v1.0` when there is none.
 */
export function nextVersion(tags: string[]): string {
  for (const tag of tags) {
    const m = /^(v?)((?:\d+\.)*)(\d+)$/.exec(tag);
    if (m) {
      return `${m[1]}${m[2]}${Number(m[3]) + 1}`;
    }
  }
  return 'v1.0';
}
