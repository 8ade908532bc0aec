/**
 * Paths, MLflow routes and notebook lines built from item ids. Ids hold `/`, so each
 * segment is encoded on its own; names that are not plain words are quoted.
 */

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

/** The `%sharinghub` line that pulls `rev` of `item` (rev omitted = default branch). */
export function pullSnippet(item: string, rev?: string): string {
  const quote = (s: string) => (/^[\w./:@-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);
  return `%sharinghub pull ${quote(item)}${rev ? ` --rev ${quote(rev)}` : ''}`;
}

/** The MLflow UI route of a registered model version (`models:/<name>/<version>`). */
export function mlflowRoute(uri: string): string {
  const m = /^models:\/(.+)\/(\d+)$/.exec(uri);
  return m ? `#/models/${encodeURIComponent(m[1])}/versions/${m[2]}` : '#/models';
}
