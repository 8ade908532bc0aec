/**
 * The sidebar's state: what is asked (text, collection, keyword, sort), what came
 * back (items, the `next` link), the crawl status. Views listen to `changed`; a
 * search started later always wins over one still in flight.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI } from './request';

export interface IStacLink {
  rel: string;
  href: string;
  type?: string;
  title?: string;
  method?: string;
  body?: unknown;
}

export interface IStacAsset {
  href: string;
  title?: string;
  type?: string;
  roles?: string[];
  [key: string]: unknown;
}

export interface IStacItem {
  id: string;
  collection?: string;
  properties: { [key: string]: any };
  assets: { [key: string]: IStacAsset };
  links: IStacLink[];
}

export interface ISearchPage {
  features: IStacItem[];
  links?: IStacLink[];
  numberMatched?: number;
}

export interface ICollection {
  id: string;
  title?: string;
}

export interface IIndexStatus {
  state: 'idle' | 'running';
  progress?: { done: number; total: number | null };
  last_crawl?: {
    started: string;
    finished: string | null;
    ok: boolean;
    items: { [collection: string]: number };
    errors: { project: string; message: string }[];
  } | null;
}

export type SortKey = 'relevance' | 'newest' | 'stars';

const SORTBY: { [key in SortKey]: { field: string; direction: string }[] | null } = {
  relevance: null,
  newest: [{ field: 'datetime', direction: 'desc' }],
  stars: [{ field: 'sharinghub:stars', direction: 'desc' }]
};

/** The POST body of a search, as the STAC API takes it. */
export function searchBody(
  text: string,
  collection: string | null,
  sort: SortKey,
  limit: number
): { [key: string]: unknown } {
  const body: { [key: string]: unknown } = { limit };
  const terms = text.trim();
  if (terms) {
    body.q = [terms];
  }
  if (collection) {
    body.collections = [collection];
  }
  const sortby = SORTBY[sort];
  if (sortby) {
    body.sortby = sortby;
  }
  return body;
}

export class SharingHubModel {
  text = '';
  collection: string | null = null;
  keyword: string | null = null;
  sort: SortKey = 'relevance';

  /** How long to wait between two looks at a running crawl (ms). */
  statusInterval = 1000;

  collections: ICollection[] = [];
  items: IStacItem[] = [];
  matched: number | null = null;
  loading = false;
  status: IIndexStatus | null = null;
  private _pageSize = 20;
  private _next: IStacLink | null = null;
  private _generation = 0;
  private _sent = false;
  private _changed = new Signal<this, void>(this);

  /**
   * @param _ready - settles once the user's settings are read: the first search
   *   waits for it, so it asks for the configured page size, not the default.
   */
  constructor(private readonly _ready: Promise<unknown> = Promise.resolve()) {}

  get pageSize(): number {
    return this._pageSize;
  }

  /**
   * A new page size applies to the search on screen at once (its first page again);
   * before any search is sent (the first one waits for the settings) it is only kept.
   */
  async setPageSize(size: number): Promise<void> {
    if (size === this._pageSize) {
      return;
    }
    this._pageSize = size;
    if (this._sent) {
      await this.search();
    }
  }

  /** Emitted whenever anything a view shows has changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /**
   * The results the cards show: the server's, narrowed to the chosen keyword. The
   * API's CQL2 has no array operators, so the keyword chips filter what is loaded.
   */
  get visibleItems(): IStacItem[] {
    const k = this.keyword;
    return k
      ? this.items.filter(i => ((i.properties.keywords as string[]) ?? []).includes(k))
      : this.items;
  }

  get hasMore(): boolean {
    return this._next !== null;
  }

  /** Keywords of the results so far, most frequent first (the filter chips). */
  get keywords(): string[] {
    const counts = new Map<string, number>();
    for (const item of this.items) {
      for (const k of (item.properties.keywords as string[]) ?? []) {
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
    }
    if (this.keyword) {
      counts.set(this.keyword, Infinity);
    }
    return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(e => e[0]);
  }

  async loadCollections(): Promise<void> {
    const answer = await requestAPI<{ collections: ICollection[] }>(
      'sharinghub/api/stac/collections'
    );
    this.collections = answer.collections;
    this._changed.emit();
  }

  /** Start a new search from the current criteria (the first page). */
  async search(): Promise<void> {
    const generation = ++this._generation;
    await this._ready.catch(() => undefined);
    this.loading = true;
    this._changed.emit();
    this._sent = true;
    try {
      const page = await requestAPI<ISearchPage>('sharinghub/api/stac/search', {
        method: 'POST',
        body: searchBody(this.text, this.collection, this.sort, this._pageSize)
      });
      if (generation === this._generation) {
        this.items = page.features;
        this.matched = page.numberMatched ?? null;
        this._next = nextLink(page);
      }
    } finally {
      if (generation === this._generation) {
        this.loading = false;
        this._changed.emit();
      }
    }
  }

  /** Append the next page (infinite scroll); does nothing while a page is loading. */
  async more(): Promise<void> {
    const link = this._next;
    if (!link || this.loading) {
      return;
    }
    const generation = this._generation;
    this.loading = true;
    this._changed.emit();
    try {
      const page = await requestAPI<ISearchPage>(link.href, {
        method: link.method ?? 'GET',
        body: link.method === 'POST' ? link.body : undefined
      });
      if (generation === this._generation) {
        this.items = [...this.items, ...page.features];
        this._next = nextLink(page);
      }
    } finally {
      if (generation === this._generation) {
        this.loading = false;
        this._changed.emit();
      }
    }
  }

  /**
   * Reads the crawl status (`crawl`: starts a crawl first) and follows a running
   * crawl until it ends, then searches again so the results show what it indexed.
   * The sidebar's button and the palette command both come here.
   */
  async refreshStatus(crawl = false): Promise<void> {
    let method = crawl ? 'POST' : 'GET';
    for (let first = true; ; first = false) {
      this.status = await requestAPI<IIndexStatus>('sharinghub/api/index', { method });
      this._changed.emit();
      if (this.status.state !== 'running') {
        if (!first) {
          await this.search();
        }
        return;
      }
      method = 'GET';
      await new Promise(resolve => setTimeout(resolve, this.statusInterval));
    }
  }
}

function nextLink(page: ISearchPage): IStacLink | null {
  return (page.links ?? []).find(link => link.rel === 'next') ?? null;
}

/**
 * "12 entries in 3 collections · last crawl 2026-12-02 10:00 · 1 problem" for the
 * status line. The crawl counts entries per collection and a project in several
 * collections has one entry in each, so their sum is not a count of distinct items.
 */
export function statusLine(status: IIndexStatus | null): string {
  if (!status) {
    return 'Catalog status unknown';
  }
  const crawl = status.last_crawl;
  const parts: string[] = [];
  if (crawl) {
    const counts = Object.values(crawl.items ?? {}).filter(n => n > 0);
    const entries = counts.reduce((a, b) => a + b, 0);
    parts.push(
      `${plural(entries, 'entry', 'entries')} in ${plural(counts.length, 'collection')}`
    );
    parts.push(`last crawl ${shortDate(crawl.finished ?? crawl.started)}`);
    parts.push(plural(crawl.errors?.length ?? 0, 'problem'));
  } else {
    parts.push('never crawled');
  }
  if (status.state === 'running') {
    const p = status.progress;
    parts.unshift(`crawling${p ? ` ${p.done}/${p.total ?? '?'}` : ''}`);
  }
  return parts.join(' · ');
}

/** "1 problem", "2 problems". */
function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** An ISO date as "YYYY-MM-DD HH:MM" (local time), or the input when it is not a date. */
export function shortDate(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const d = new Date(iso);
  if (isNaN(d.getTime())) {
    return String(iso);
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The first `max` characters of a README-ish description, without Markdown noise. */
export function excerpt(text: string | undefined, max = 160, title = ''): string {
  let body = text ?? '';
  const heading = /^\s*#\s+(.*)\n/.exec(body);
  if (heading && heading[1].trim() === title.trim()) {
    body = body.slice(heading[0].length); // the README's title repeats the card's
  }
  const plain = body
    .replace(/<[^>]*>?/g, ' ')
    .replace(/!\[[^\]]*\]\([^)]*\)/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[#*_`>]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  return plain.length > max ? `${plain.slice(0, max - 1)}…` : plain;
}

/** The item's thumbnail asset (role `thumbnail`), if any. */
export function thumbnail(item: IStacItem): IStacAsset | null {
  return (
    Object.values(item.assets ?? {}).find(a => (a.roles ?? []).includes('thumbnail')) ?? null
  );
}
