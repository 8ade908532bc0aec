/**
 * The one way this extension talks to the server: every call goes through
 * `ServerConnection` (base URL, token, XSRF cookie) and every failure becomes a
 * `SharingHubError` carrying the server's one-line `description`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A failed request, with the one line a user should read. */
export class SharingHubError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
    this.name = 'SharingHubError';
  }
}

let settings: ServerConnection.ISettings | null = null;

/** The server settings (made once from the page's config, so all views share them). */
export function serverSettings(): ServerConnection.ISettings {
  if (!settings) {
    settings = ServerConnection.makeSettings();
  }
  return settings;
}

/**
 * Replaces the settings every request uses (`null`: back to the page's). For a page
 * that talks to another server, and for tests, which pass
 * `ServerConnection.makeSettings({baseUrl, fetch, ...})`.
 */
export function setServerSettings(value: ServerConnection.ISettings | null): void {
  settings = value;
}

/** An absolute URL under Jupyter's base URL, e.g. `apiUrl('sharinghub/api/index')`. */
export function apiUrl(path: string): string {
  return URLExt.join(serverSettings().baseUrl, path);
}

/**
 * `path` is relative to the base URL (`sharinghub/api/...`) or absolute (a `next`
 * link the server handed out). JSON in, JSON out.
 */
export async function requestAPI<T>(
  path: string,
  init: { method?: string; body?: unknown } = {}
): Promise<T> {
  const url = /^https?:\/\//.test(path) ? path : apiUrl(path);
  const request: RequestInit = { method: init.method ?? 'GET' };
  if (init.body !== undefined) {
    request.body = JSON.stringify(init.body);
    request.headers = { 'Content-Type': 'application/json' };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, request, serverSettings());
  } catch (error) {
    throw new SharingHubError(`the server did not answer (${error})`, 0);
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const line =
      (data && (data.description || data.message)) ||
      `${response.status} ${response.statusText}`;
    throw new SharingHubError(String(line).split('\n')[0], response.status);
  }
  return data as T;
}
