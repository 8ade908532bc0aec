/**
 * The rendering helpers in jsdom: server text goes into the DOM as text (a title or
 * keyword holding markup creates no element), and the formats cards and views show.
 */
import { itemCard } from '../src/components/card';
import { button, debounce, el, humanSize } from '../src/components/dom';
import { itemSnippet, linkedItem, itemPath, mlflowRoute, nextVersion, pullSnippet } from '../src/links';
import { excerpt, IStacItem, searchBody, shortDate, statusLine, thumbnail } from '../src/model';

const HOSTILE = '<img src="x" onerror="window.__pwned = 1"><script>window.__pwned = 2</script>';

function item(properties: { [key: string]: unknown }, assets: IStacItem['assets'] = {}): IStacItem {
  return { id: 'local/flood', collection: 'dataset', properties, assets, links: [] };
}

describe('el', () => {
  it('puts strings in as text, never as HTML', () => {
    const node = el('div', { title: HOSTILE }, HOSTILE, null, undefined);
    expect(node.children).toHaveLength(0);
    expect(node.querySelector('img, script')).toBeNull();
    expect(node.textContent).toBe(HOSTILE);
    expect(node.getAttribute('title')).toBe(HOSTILE);
  });

  it('skips undefined attributes and appends element children', () => {
    const child = el('span', {}, 'x');
    const node = el('a', { href: 'https://example.org/', download: undefined }, child);
    expect(node.hasAttribute('download')).toBe(false);
    expect(node.firstChild).toBe(child);
  });
});

describe('itemCard', () => {
  it('creates no element from a hostile title, description or keyword', () => {
    const card = itemCard(
      item({ title: HOSTILE, description: `# x\n${HOSTILE} body`, keywords: [HOSTILE] }),
      () => undefined
    );
    document.body.append(card);
    expect(card.querySelectorAll('img, script')).toHaveLength(0);
    expect(card.querySelector('.jp-SharingHub-cardTitle')!.textContent).toBe(HOSTILE);
    expect(card.querySelector('.jp-SharingHub-keyword')!.textContent).toBe(HOSTILE);
    expect((window as any).__pwned).toBeUndefined();
    card.remove();
  });

  it('shows thumbnail, excerpt, date, stars and at most five keywords', () => {
    const card = itemCard(
      item(
        {
          title: 'Flood',
          description: '# Flood\nSentinel-1 **chips** of [floods](https://x.org).',
          datetime: '2026-12-02T10:05:00',
          'sharinghub:stars': 3,
          keywords: ['a', 'b', 'c', 'd', 'e', 'f']
        },
        { preview: { href: 'https://h/preview.png', roles: ['thumbnail'] } }
      ),
      () => undefined
    );
    expect(card.dataset.item).toBe('local/flood');
    expect(card.querySelector('img')!.getAttribute('src')).toBe('https://h/preview.png');
    expect(card.querySelector('.jp-SharingHub-cardText')!.textContent).toBe(
      'Sentinel-1 chips of floods.'
    );
    const meta = card.querySelector('.jp-SharingHub-cardMeta')!;
    expect(meta.textContent).toContain('2026-12-02');
    expect(meta.textContent).toContain('★ 3');
    expect(card.querySelectorAll('.jp-SharingHub-keyword')).toHaveLength(5);
  });

  it('falls back to the id and the collection without title or thumbnail', () => {
    const card = itemCard(item({}), () => undefined);
    expect(card.querySelector('.jp-SharingHub-cardTitle')!.textContent).toBe('local/flood');
    expect(card.querySelector('.jp-SharingHub-noThumb')!.textContent).toBe('dataset');
    expect(card.textContent).not.toContain('★');
  });

  it('opens the item on click and on Enter', () => {
    const opened: string[] = [];
    const card = itemCard(item({}), i => opened.push(i.id));
    card.click();
    card.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    card.dispatchEvent(new KeyboardEvent('keydown', { key: 'a' }));
    expect(opened).toEqual(['local/flood', 'local/flood']);
  });
});

describe('formats', () => {
  it('humanSize', () => {
    expect(humanSize(null)).toBe('');
    expect(humanSize(undefined)).toBe('');
    expect(humanSize(0)).toBe('0 B');
    expect(humanSize(999)).toBe('999 B');
    expect(humanSize(1000)).toBe('1.0 kB');
    expect(humanSize(1_234_567)).toBe('1.2 MB');
    expect(humanSize(5e15)).toBe('5000.0 TB');
  });

  it('shortDate', () => {
    expect(shortDate('2026-12-02T09:05:00')).toBe('2026-12-02 09:05'); // local time in, out
    expect(shortDate('not a date')).toBe('not a date');
    expect(shortDate(null)).toBe('');
  });

  it('excerpt drops the repeated title, Markdown and HTML, and cuts at max', () => {
    expect(excerpt('# Title\nSome *text* <b>here</b> ![preview](p.png)', 160, 'Title')).toBe(
      'Some text here'
    );
    expect(excerpt('# Other\nbody', 160, 'Title')).toBe('Other body');
    const long = excerpt('word '.repeat(100), 20);
    expect(long).toHaveLength(20);
    expect(long.endsWith('…')).toBe(true);
    expect(excerpt(undefined)).toBe('');
  });

  it('statusLine', () => {
    expect(statusLine(null)).toBe('Catalog status unknown');
    const crawl = {
      started: '2026-12-02T09:00:00',
      finished: '2026-12-02T09:05:00',
      ok: true,
      items: { dataset: 2, 'ai-model': 1 },
      errors: [{ project: 'local/x', message: 'bad front matter' }]
    };
    expect(statusLine({ state: 'idle', last_crawl: crawl })).toBe(
      '3 entries in 2 collections · last crawl 2026-12-02 09:05 · 1 problem'
    );
    // one project in two collections is an entry in each: the line does not call it 2 items
    const one = { ...crawl, items: { dataset: 1, tools: 1, 'ai-model': 0 }, errors: [] };
    expect(statusLine({ state: 'idle', last_crawl: one })).toBe(
      '2 entries in 2 collections · last crawl 2026-12-02 09:05 · 0 problems'
    );
    expect(statusLine({ state: 'idle', last_crawl: { ...one, items: { dataset: 1 } } })).toMatch(
      /^1 entry in 1 collection · /
    );
    expect(
      statusLine({ state: 'running', progress: { done: 4, total: null }, last_crawl: null })
    ).toBe('crawling 4/? · never crawled');
  });

  it('thumbnail picks the asset with the thumbnail role', () => {
    expect(thumbnail(item({}, { data: { href: 'd' } }))).toBeNull();
    expect(thumbnail(item({}, { a: { href: 'd' }, p: { href: 't', roles: ['thumbnail'] } }))!.href).toBe('t');
  });

  it('searchBody sends only what is asked', () => {
    expect(searchBody('  ', null, 'relevance', 20)).toEqual({ limit: 20 });
    expect(searchBody('x', 'dataset', 'newest', 5)).toEqual({
      limit: 5,
      q: ['x'],
      collections: ['dataset'],
      sortby: [{ field: 'datetime', direction: 'desc' }]
    });
  });

  it('item paths and links round-trip ids that hold slashes', () => {
    const path = itemPath('ai-model', 'group/sub/my model');
    expect(path).toBe('sharinghub/api/stac/collections/ai-model/items/group/sub/my%20model');
    expect(linkedItem(`http://h/base/${path}?x=1`)).toEqual({
      collection: 'ai-model',
      id: 'group/sub/my model'
    });
    expect(linkedItem('https://gitlab.example/group/project')).toBeNull();
  });

  it('pullSnippet quotes what is not a plain name', () => {
    expect(pullSnippet('local/flood', 'v1.0')).toBe('%sharinghub pull local/flood --rev v1.0');
    expect(pullSnippet('local/flood')).toBe('%sharinghub pull local/flood');
    expect(pullSnippet("a b'c")).toBe("%sharinghub pull 'a b'\\''c'");
  });

  it('itemSnippet tracks a model and pulls a dataset at its newest version once known', () => {
    expect(itemSnippet('ai-model', 'local/flood-model', 'v2')).toBe(
      '%sharinghub track local/flood-model'
    );
    expect(itemSnippet('ai-model', 'my group/model')).toBe("%sharinghub track 'my group/model'");
    expect(itemSnippet('dataset', 'local/flood', 'v1.1')).toBe(
      '%sharinghub pull local/flood --rev v1.1'
    );
    expect(itemSnippet('dataset', 'local/flood')).toBe('%sharinghub pull local/flood');
  });

  it('nextVersion follows the newest tag that looks like a version', () => {
    expect(nextVersion(['v1.1', 'v1.0'])).toBe('v1.2');
    expect(nextVersion(['2.0.9'])).toBe('2.0.10');
    expect(nextVersion(['latest', 'v3'])).toBe('v4');
    expect(nextVersion(['release-candidate', 'v0.9'])).toBe('v0.10');
    expect(nextVersion([])).toBe('v1.0');
  });

  it('mlflowRoute points at the registered version', () => {
    expect(mlflowRoute('models:/flood unet/3')).toBe('#/models/flood%20unet/versions/3');
    expect(mlflowRoute('runs:/abc/model')).toBe('#/models');
  });
});

describe('dom behaviour', () => {
  it('button runs its action and keeps the click from the card under it', () => {
    const actions: string[] = [];
    const card = el('div', {});
    card.addEventListener('click', () => actions.push('card'));
    const b = button('Pull', () => actions.push('pull'), 'x');
    card.append(b);
    b.click();
    expect(actions).toEqual(['pull']);
    expect(b.className).toBe('jp-SharingHub-button x');
    expect(b.type).toBe('button');
  });

  it('debounce calls once, with the last arguments, after the quiet time', () => {
    jest.useFakeTimers();
    try {
      const calls: string[] = [];
      const typed = debounce((text: string) => calls.push(text), 300);
      typed('f');
      typed('fl');
      jest.advanceTimersByTime(299);
      expect(calls).toEqual([]);
      typed('flo');
      jest.advanceTimersByTime(300);
      expect(calls).toEqual(['flo']);
    } finally {
      jest.useRealTimers();
    }
  });
});
