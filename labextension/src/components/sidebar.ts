/**
 * The "SharingHub" panel of the left area: search box, collection tabs, sort,
 * keyword chips, result cards with infinite scroll, and the crawl status line.
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IStacItem, SharingHubModel, SortKey, statusLine } from '../model';
import { itemCard } from './card';
import { button, debounce, el } from './dom';

/** Shows a failed request as a JupyterLab notification (the server's one line). */
export function notifyError(error: unknown): void {
  Notification.error(error instanceof Error ? error.message : String(error), {
    autoClose: 8000
  });
}

export class SharingHubSidebar extends Widget {
  private _input: HTMLInputElement;
  private _tabs = el('div', { class: 'jp-SharingHub-tabs', role: 'tablist' });
  private _chips = el('div', { class: 'jp-SharingHub-keywords' });
  private _count = el('div', { class: 'jp-SharingHub-count' });
  private _list = el('ul', { class: 'jp-SharingHub-results' });
  private _more: HTMLButtonElement;
  private _status = el('span', { class: 'jp-SharingHub-statusText' });
  private _observer: IntersectionObserver;
  private _scroller: HTMLElement;
  private _sentinel: HTMLElement;

  constructor(
    readonly model: SharingHubModel,
    private readonly _open: (item: IStacItem) => void
  ) {
    super();
    this.id = 'sharinghub-sidebar';
    this.addClass('jp-SharingHub-sidebar');
    this.title.caption = 'SharingHub';

    this._input = el('input', {
      class: 'jp-SharingHub-search jp-mod-styled',
      type: 'search',
      placeholder: 'Search the catalog',
      'aria-label': 'Search the catalog'
    });
    const search = debounce(() => this._run(), 300);
    this._input.addEventListener('input', () => {
      model.text = this._input.value;
      search();
    });
    const sort = el(
      'select',
      { class: 'jp-SharingHub-sort jp-mod-styled', 'aria-label': 'Sort by' },
      el('option', { value: 'relevance' }, 'Relevance'),
      el('option', { value: 'newest' }, 'Newest'),
      el('option', { value: 'stars' }, 'Stars')
    );
    sort.addEventListener('change', () => {
      model.sort = sort.value as SortKey;
      this._run();
    });
    this._more = button('More', () => this._loadMore(), 'jp-SharingHub-more');
    const sentinel = (this._sentinel = el('div', { class: 'jp-SharingHub-sentinel' }));
    const scroller = (this._scroller = el(
      'div',
      { class: 'jp-SharingHub-scroll' },
      this._list,
      this._more,
      sentinel
    ));
    this._observer = new IntersectionObserver(
      entries => {
        if (entries.some(e => e.isIntersecting)) {
          this._loadMore();
        }
      },
      { root: scroller }
    );
    this._observer.observe(sentinel);

    const refresh = button('Refresh catalog', () => void this.refresh(), 'jp-SharingHub-refresh');
    this.node.append(
      el('div', { class: 'jp-SharingHub-header' }, el('h2', {}, 'SharingHub')),
      el('div', { class: 'jp-SharingHub-controls' }, this._input, sort),
      this._tabs,
      this._chips,
      this._count,
      scroller,
      el('div', { class: 'jp-SharingHub-status' }, this._status, refresh)
    );
    model.changed.connect(this._render, this);
  }

  /** The first load: collections, results, status. */
  async start(): Promise<void> {
    await Promise.all([
      this.model.loadCollections().catch(notifyError),
      this._run(),
      this.model.refreshStatus().catch(notifyError)
    ]);
  }

  /**
   * "Refresh catalog" (the button and the palette command): crawl now, follow the
   * crawl in the status line, then show the new results.
   */
  async refresh(): Promise<void> {
    await this.model.refreshStatus(true).catch(notifyError);
  }

  dispose(): void {
    this._observer.disconnect();
    super.dispose();
  }

  private async _run(): Promise<void> {
    await this.model.search().catch(notifyError);
  }

  private _loadMore(): void {
    if (this.model.hasMore && !this.model.loading) {
      this.model.more().catch(notifyError);
    }
  }

  private _render(): void {
    const m = this.model;
    this._tabs.replaceChildren(
      ...[{ id: '', title: 'All' }, ...m.collections].map(c => {
        const tab = button(c.title || c.id, () => {
          m.collection = c.id || null;
          void this._run();
        }, 'jp-SharingHub-tab');
        tab.setAttribute('role', 'tab');
        tab.dataset.collection = c.id;
        tab.setAttribute('aria-selected', String((m.collection ?? '') === c.id));
        return tab;
      })
    );
    this._chips.replaceChildren(
      ...m.keywords.slice(0, 12).map(k => {
        const chip = button(k, () => {
          m.keyword = m.keyword === k ? null : k;
          this._render();
        }, 'jp-SharingHub-chip');
        chip.setAttribute('aria-pressed', String(m.keyword === k));
        return chip;
      })
    );
    const items = m.visibleItems;
    this._count.textContent = m.loading
      ? 'Searching…'
      : m.matched === null
        ? ''
        : `${m.matched} result${m.matched === 1 ? '' : 's'}`;
    this._list.replaceChildren(...items.map(item => itemCard(item, this._open)));
    this._more.hidden = !m.hasMore;
    this._more.disabled = m.loading;
    this._status.textContent = statusLine(m.status);
    if (m.hasMore && !m.loading) {
      requestAnimationFrame(() => this._fillView());
    }
  }

  /**
   * Loads the next page while the list's end is in view: the observer only reports
   * changes, and a short first page leaves the end in view without any change.
   */
  private _fillView(): void {
    const view = this._scroller.getBoundingClientRect();
    if (view.height > 0 && this._sentinel.getBoundingClientRect().top <= view.bottom) {
      this._loadMore();
    }
  }
}
