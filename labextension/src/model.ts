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
  pageSize = 20;

  collections: ICollection[] = [];
  items: IStacItem[] = [];
  matched: number | null = null;
  loading = false;
  status: IIndexStatus | null = null;
  private _next: IStacLink | null = null;
  private _generation = 0;
  private _changed = new Signal<this, void>(this);

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
    this.loading = true;
    this._changed.emit();
    try {
      const page = await requestAPI<ISearchPage>('sharinghub/api/stac/search', {
        method: 'POST',
        body: searchBody(this.text, this.collection, this.sort, this.pageSize)
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

  async refreshStatus(crawl = false): Promise<void> {
    this.status = await requestAPI<IIndexStatus>('sharinghub/api/index', {
      method: crawl ? 'POST' : 'GET'
    });
    this._changed.emit();
  }
}

function nextLink(page: ISearchPage): IStacLink | null {
  return (page.links ?? []).find(link => link.rel === 'next') ?? null;
}

/** "12 items · last crawl 2026-12-02 10:00 · 1 problem" for the status line. */
export function statusLine(status: IIndexStatus | null): string {
  if (!status) {
    return 'Catalog status unknown';
  }
  const crawl = status.last_crawl;
  const parts: string[] = [];
  if (crawl) {
    const count = Object.values(crawl.items ?? {}).reduce((a, b) => a + b, 0);
    parts.push(`${count} items indexed`);
    parts.push(`last crawl ${shortDate(crawl.finished ?? crawl.started)}`);
    const problems = crawl.errors?.length ?? 0;
    parts.push(`${problems} problem${problems === 1 ? '' : 's'}`);
  } else {
    parts.push('never crawled');
  }
  if (status.state === 'running') {
    const p = status.progress;
    parts.unshift(`crawling${p ? ` ${p.done}/${p.total ?? '?'}` : ''}`);
  }
  return parts.join(' · ');
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
