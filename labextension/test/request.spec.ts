/**
 * @jest-environment node
 *
 * The request layer against a real HTTP server on loopback (node's `http`): URLs under
 * the settings' base URL, the token header, JSON bodies, the server's one-line error,
 * network errors; and the model's paging through the API's `next` links.
 */
import * as http from 'http';
import { AddressInfo } from 'net';

import { ServerConnection } from '@jupyterlab/services';

import { IIndexStatus, SharingHubModel } from '../src/model';
import { itemPath, mlflowUrl } from '../src/links';
import { apiUrl, requestAPI, setServerSettings, SharingHubError } from '../src/request';

interface ISeen {
  method: string;
  url: string;
  authorization?: string;
  body: string;
}

const seen: ISeen[] = [];
let server: http.Server;
let origin: string;
/** How many more answers of `sharinghub/api/index` say a crawl is running. */
let crawlAnswers = 0;

/** Answers like the server extension does, under the base URL `/a%40b/`. */
function answer(req: http.IncomingMessage, body: string, res: http.ServerResponse): void {
  const json = (status: number, data: unknown) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(data));
  };
  const path = (req.url ?? '').split('?')[0]; // ServerConnection may add a cache buster
  if (path === '/a%40b/sharinghub/api/index') {
    const running = crawlAnswers > 0;
    crawlAnswers = Math.max(0, crawlAnswers - 1);
    json(200, { state: running ? 'running' : 'idle', method: req.method });
  } else if (path.startsWith('/a%40b/sharinghub/api/stac/collections/dataset/items/')) {
    json(404, { code: 'NotFound', description: 'unknown item: local/none\nTraceback: noise' });
  } else if (path === '/a%40b/sharinghub/api/stac/search' && req.method === 'POST') {
    const query = JSON.parse(body);
    const page = query.token ? 2 : 1;
    json(200, {
      features: [{ id: `item-${page}`, properties: {}, assets: {}, links: [] }],
      numberMatched: 2,
      links:
        page === 1
          ? [{ rel: 'next', href: `${origin}/a%40b/sharinghub/api/stac/search`, method: 'POST',
               body: { ...query, token: 'p2' } }]
          : []
    });
  } else if (path === '/a%40b/broken') {
    res.writeHead(502, { 'Content-Type': 'text/html' });
    res.end('<html><body>Bad gateway</body></html>');
  } else {
    json(400, { code: 'BadRequest', description: `no route ${path}` });
  }
}

/** The error a request that must fail rejects with. */
async function failure(request: Promise<unknown>): Promise<SharingHubError> {
  try {
    await request;
  } catch (error) {
    return error as SharingHubError;
  }
  throw new Error('the request succeeded');
}

function settingsFor(base: string): ServerConnection.ISettings {
  return ServerConnection.makeSettings({
    baseUrl: base,
    wsUrl: base.replace(/^http/, 'ws'),
    token: 'secret-token',
    fetch: globalThis.fetch,
    Request: globalThis.Request,
    Headers: globalThis.Headers
  });
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', chunk => (body += chunk));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: (req.url ?? '').split('?')[0], authorization: req.headers.authorization, body });
      answer(req, body, res);
    });
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  setServerSettings(null);
  await new Promise(resolve => server.close(resolve));
});

beforeEach(() => {
  seen.length = 0;
  crawlAnswers = 0;
  setServerSettings(settingsFor(`${origin}/a%40b/`));
});

describe('requestAPI', () => {
  it('builds URLs under the base URL and sends the token', async () => {
    expect(apiUrl('sharinghub/api/index')).toBe(`${origin}/a%40b/sharinghub/api/index`);
    const status = await requestAPI<{ state: string; method: string }>('sharinghub/api/index', {
      method: 'POST'
    });
    expect(status).toEqual({ state: 'idle', method: 'POST' });
    expect(seen).toHaveLength(1);
    expect(seen[0].url).toBe('/a%40b/sharinghub/api/index');
    expect(seen[0].authorization).toBe('token secret-token');
  });

  it('encodes each segment of an item id that holds a slash', async () => {
    await expect(requestAPI(itemPath('dataset', 'local/a b#c'))).rejects.toThrow();
    expect(seen[0].url).toBe('/a%40b/sharinghub/api/stac/collections/dataset/items/local/a%20b%23c');
  });

  it("turns the server's {code, description} into its first line", async () => {
    const error = await failure(requestAPI(itemPath('dataset', 'local/none')));
    expect(error).toBeInstanceOf(SharingHubError);
    expect(error.message).toBe('unknown item: local/none');
    expect(error.status).toBe(404);
  });

  it('falls back to the HTTP status when the error body is not JSON', async () => {
    const error = await failure(requestAPI('broken'));
    expect(error).toBeInstanceOf(SharingHubError);
    expect(error.message).toBe('502 Bad Gateway');
    expect(error.status).toBe(502);
  });

  it('reports a server that does not answer as one line with status 0', async () => {
    const closed = http.createServer();
    await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise(resolve => closed.close(resolve));
    setServerSettings(settingsFor(`http://127.0.0.1:${port}/`));
    const error = await failure(requestAPI('sharinghub/api/index'));
    expect(error).toBeInstanceOf(SharingHubError);
    expect(error.status).toBe(0);
    expect(error.message).toMatch(/^the server did not answer/);
    expect(error.message).not.toContain('\n');
  });
});

describe('SharingHubModel paging', () => {
  it("posts the search, then follows the `next` link with the body it carries", async () => {
    const model = new SharingHubModel();
    model.text = '  flood maps ';
    model.collection = 'dataset';
    model.sort = 'stars';
    await model.setPageSize(7); // no search sent yet: only kept
    await model.search();
    expect(JSON.parse(seen[0].body)).toEqual({
      limit: 7,
      q: ['flood maps'],
      collections: ['dataset'],
      sortby: [{ field: 'sharinghub:stars', direction: 'desc' }]
    });
    expect(model.items.map(i => i.id)).toEqual(['item-1']);
    expect(model.matched).toBe(2);
    expect(model.hasMore).toBe(true);

    await model.more();
    expect(seen[1].method).toBe('POST');
    expect(JSON.parse(seen[1].body).token).toBe('p2');
    expect(model.items.map(i => i.id)).toEqual(['item-1', 'item-2']);
    expect(model.hasMore).toBe(false);
    await model.more(); // nothing left: no request
    expect(seen).toHaveLength(2);
  });
});

describe('SharingHubModel settings', () => {
  it('holds the first search until the settings are read, then re-runs it on a new page size', async () => {
    let settingsRead!: () => void;
    const model = new SharingHubModel(new Promise<void>(resolve => (settingsRead = resolve)));
    model.text = 'flood';
    const first = model.search();
    await new Promise(resolve => setTimeout(resolve, 50)); // time enough to send it, were it sent
    expect(seen).toHaveLength(0);
    await model.setPageSize(2); // read from the settings before the search is sent: kept
    expect(seen).toHaveLength(0);
    settingsRead();
    await first;
    expect(seen.map(s => JSON.parse(s.body))).toEqual([{ limit: 2, q: ['flood'] }]);

    await model.setPageSize(5); // the user changes the setting: the same search, new size
    expect(seen.map(s => JSON.parse(s.body))).toEqual([
      { limit: 2, q: ['flood'] },
      { limit: 5, q: ['flood'] }
    ]);
    await model.setPageSize(5); // unchanged: no request
    expect(seen).toHaveLength(2);
  });
});

describe('SharingHubModel crawl status', () => {
  it('follows a crawl it starts until it ends, then searches again', async () => {
    const model = new SharingHubModel();
    model.statusInterval = 10;
    const states: IIndexStatus['state'][] = [];
    model.changed.connect(() => model.status && states.push(model.status.state));
    crawlAnswers = 2; // the POST and the first GET find the crawl running
    await model.refreshStatus(true);
    expect(seen.map(s => `${s.method} ${s.url}`)).toEqual([
      'POST /a%40b/sharinghub/api/index',
      'GET /a%40b/sharinghub/api/index',
      'GET /a%40b/sharinghub/api/index',
      'POST /a%40b/sharinghub/api/stac/search'
    ]);
    expect(model.status!.state).toBe('idle');
    expect(states).toContain('running');
    expect(model.items.map(i => i.id)).toEqual(['item-1']);
  });

  it('only reads an idle status, without searching', async () => {
    const model = new SharingHubModel();
    await model.refreshStatus();
    expect(seen.map(s => `${s.method} ${s.url}`)).toEqual(['GET /a%40b/sharinghub/api/index']);
  });
});

describe('mlflowUrl', () => {
  it('points at the MLflow UI under the base URL, with the route', () => {
    expect(mlflowUrl()).toBe(`${origin}/a%40b/sharinghub/mlflow/`);
    expect(mlflowUrl('#/models/flood/versions/3')).toBe(
      `${origin}/a%40b/sharinghub/mlflow/#/models/flood/versions/3`
    );
  });
});
