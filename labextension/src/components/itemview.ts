/**
 * One catalog item in a main-area tab: README (Markdown through JupyterLab's
 * sanitizer), properties, assets, links, DVC versions with pull jobs, registered
 * MLflow models, and notebook snippets.
 */
import { MimeModel, IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';

import { IStacItem, IStacLink, shortDate } from '../model';
import { itemPath, itemSnippet, linkedItem, mlflowRoute, nextVersion, pullSnippet } from '../links';
import { requestAPI } from '../request';
import { button, el, humanSize } from './dom';
import { notifyError } from './sidebar';

export interface IVersion {
  rev: string;
  kind: 'tag' | 'branch';
  commit: string;
  date: string;
  outputs: { path: string; md5: string; size: number | null; nfiles: number | null }[];
}

export interface IJob {
  job: string;
  state: 'queued' | 'cloning' | 'pulling' | 'pushing' | 'done' | 'failed' | 'cancelled';
  dest: string;
  files_done: number | null;
  files_total: number | null;
  bytes_done: number | null;
  bytes_total: number | null;
  error: string | null;
}

/** What the view needs from JupyterLab, passed in by the plugin. */
export interface IItemViewHost {
  rendermime: IRenderMimeRegistry;
  /** The file browser's current folder ("" at the root). */
  currentFolder(): string;
  /** The default destination folder from the settings ("" = the file browser's). */
  defaultFolder(): string;
  openFolder(path: string): Promise<void>;
  insertSnippet(code: string): boolean;
  openItem(id: string, collection: string): void;
  openMlflow(path?: string): void;
}

/** `GET sharinghub/api/publish/permissions`: may this server push a new version? */
export interface IPermissions {
  item: string;
  can_publish: boolean;
  reason: string | null;
}

const ENDED = new Set(['done', 'failed', 'cancelled']);

export class ItemView extends Widget {
  private _item: IStacItem | null = null;
  private _dest: HTMLInputElement;
  /** The newest DVC version (the server lists newest first), once loaded. */
  private _latestRev: string | undefined;
  /** The tags among the versions, newest first (for the next version's name). */
  private _tags: string[] = [];

  constructor(
    readonly collection: string,
    readonly itemId: string,
    private readonly _host: IItemViewHost
  ) {
    super();
    this.addClass('jp-SharingHub-item');
    this.title.label = itemId.split('/').pop() ?? itemId;
    this.title.caption = itemId;
    this.title.closable = true;
    this._dest = el('input', {
      class: 'jp-SharingHub-dest jp-mod-styled',
      'aria-label': 'Destination folder'
    });
    this.node.append(el('p', { class: 'jp-SharingHub-loading' }, 'Loading…'));
  }

  get item(): IStacItem | null {
    return this._item;
  }

  /** Fetches the item and its versions, then draws everything. */
  async load(): Promise<void> {
    try {
      this._item = await requestAPI<IStacItem>(itemPath(this.collection, this.itemId));
    } catch (error) {
      this.node.replaceChildren(el('p', { class: 'jp-SharingHub-error' }, String(error)));
      notifyError(error);
      return;
    }
    const item = this._item;
    const p = item.properties;
    this.title.label = p.title || this.title.label;
    const readme = el('div', { class: 'jp-SharingHub-readme' });
    const versions = el('div', { class: 'jp-SharingHub-versions' }, 'Looking for versions…');
    const publish = el('div', { class: 'jp-SharingHub-publish' });
    this.node.replaceChildren(
      el(
        'header',
        { class: 'jp-SharingHub-itemHeader' },
        el('h1', {}, p.title || item.id),
        el('div', { class: 'jp-SharingHub-itemId' }, `${item.collection} · ${item.id}`),
        button('Insert snippet', () => this._insertCode(this._headerSnippet()), 'jp-SharingHub-snippet')
      ),
      el('section', {}, el('h2', {}, 'Versions'), versions),
      item.collection === 'dataset'
        ? el('section', {}, el('h2', {}, 'Publish a new version'), publish)
        : el('span'),
      this._models(),
      el('section', {}, el('h2', {}, 'README'), readme),
      el('section', {}, el('h2', {}, 'Assets'), this._assets()),
      this._links(),
      el('section', {}, el('h2', {}, 'Properties'), this._properties())
    );
    await Promise.all([this._renderReadme(readme, p.description ?? ''), this._versions(versions)]);
    if (item.collection === 'dataset') {
      await this._publishForm(publish, versions);
    }
  }

  /**
   * "Publish new version" when the server may push to the project: a workspace folder,
   * the version's name (the next one after the newest tag) and a message; the job's
   * progress below, the versions listed again once it is done.
   */
  private async _publishForm(host: HTMLElement, versions: HTMLElement): Promise<void> {
    let allowed: IPermissions;
    try {
      allowed = await requestAPI<IPermissions>(
        `sharinghub/api/publish/permissions?item=${encodeURIComponent(this.itemId)}`
      );
    } catch (error) {
      host.replaceChildren(el('p', { class: 'jp-SharingHub-dim' }, `Cannot publish: ${errorLine(error)}`));
      return;
    }
    if (!allowed.can_publish) {
      host.replaceChildren(
        el('p', { class: 'jp-SharingHub-dim' }, `Cannot publish: ${allowed.reason ?? 'no push rights'}`)
      );
      return;
    }
    const input = (cls: string, label: string, value = '', placeholder = '') =>
      el('input', { class: `${cls} jp-mod-styled`, 'aria-label': label, value, placeholder });
    const folder = input('jp-SharingHub-publishPath', 'Folder to publish', this._host.currentFolder());
    const version = input('jp-SharingHub-publishVersion', 'New version', nextVersion(this._tags));
    const message = input('jp-SharingHub-publishMessage', 'Message', '', 'what changed (optional)');
    const progress = el('div', { class: 'jp-SharingHub-job' });
    const go = button('Publish new version', () => {
      const body = {
        item: this.itemId,
        path: folder.value.trim(),
        version: version.value.trim(),
        message: message.value.trim() || undefined
      };
      void this._runJob('sharinghub/api/publish/dataset', body, progress, async () => {
        await this._versions(versions);
        version.value = nextVersion(this._tags);
      });
    }, 'jp-SharingHub-publishButton');
    host.replaceChildren(
      el(
        'div',
        { class: 'jp-SharingHub-publishForm' },
        el('label', {}, 'Folder ', folder),
        el('label', {}, 'Version ', version),
        el('label', {}, 'Message ', message),
        go
      ),
      progress
    );
  }

  /** Untrusted Markdown: the registry's sanitizer strips scripts and handlers. */
  private async _renderReadme(host: HTMLElement, markdown: string): Promise<void> {
    const renderer = this._host.rendermime.createRenderer('text/markdown');
    await renderer.renderModel(
      new MimeModel({ data: { 'text/markdown': markdown }, trusted: false })
    );
    host.replaceChildren(renderer.node);
  }

  private _properties(): HTMLElement {
    const rows = Object.entries(this._item!.properties)
      .filter(([key]) => key !== 'description')
      .map(([key, value]) =>
        el(
          'tr',
          {},
          el('th', {}, key),
          el('td', {}, typeof value === 'string' ? value : JSON.stringify(value))
        )
      );
    return el('table', { class: 'jp-SharingHub-props' }, el('tbody', {}, ...rows));
  }

  private _assets(): HTMLElement {
    const assets = Object.entries(this._item!.assets ?? {});
    if (!assets.length) {
      return el('p', {}, 'No assets.');
    }
    return el(
      'ul',
      { class: 'jp-SharingHub-assets' },
      ...assets.map(([key, asset]) =>
        el(
          'li',
          {},
          safeLink(asset.href, asset.title || key, true),
          el(
            'span',
            { class: 'jp-SharingHub-dim' },
            ` ${asset.type ?? ''} ${humanSize(asset['file:size'] as number | undefined)}`
          )
        )
      )
    );
  }

  private _links(): HTMLElement {
    const interesting = (this._item!.links ?? []).filter(l =>
      ['derived_from', 'related', 'cite-as', 'license', 'mlflow:tracking-uri'].includes(l.rel)
    );
    if (!interesting.length) {
      return el('span');
    }
    return el(
      'section',
      {},
      el('h2', {}, 'Links'),
      el('ul', { class: 'jp-SharingHub-links' }, ...interesting.map(l => this._link(l)))
    );
  }

  private _link(link: IStacLink): HTMLElement {
    const target = linkedItem(link.href);
    const label = link.title || (target ? target.id : link.href);
    if (target) {
      return el(
        'li',
        {},
        `${link.rel}: `,
        button(label, () => this._host.openItem(target.id, target.collection), 'jp-SharingHub-linkButton')
      );
    }
    return el('li', {}, `${link.rel}: `, safeLink(link.href, label, false));
  }

  /** Registered MLflow models (`mlflow:model` links) with "Open in MLflow". */
  private _models(): HTMLElement {
    const models = (this._item!.links ?? []).filter(l => l.rel === 'mlflow:model');
    if (!models.length) {
      return el('span');
    }
    return el(
      'section',
      {},
      el('h2', {}, 'Registered models'),
      el(
        'ul',
        { class: 'jp-SharingHub-models' },
        ...models.map(l => {
          const uri = String((l as any)['mlflow:uri'] ?? l.title ?? '');
          const route = mlflowRoute(uri);
          return el(
            'li',
            {},
            uri || l.href,
            ' ',
            button('Open in MLflow', () => this._host.openMlflow(route))
          );
        })
      )
    );
  }

  private async _versions(host: HTMLElement): Promise<void> {
    let versions: IVersion[];
    try {
      versions = (
        await requestAPI<{ versions: IVersion[] }>(
          `sharinghub/api/dvc/versions?item=${encodeURIComponent(this.itemId)}`
        )
      ).versions;
    } catch (error) {
      host.replaceChildren(el('p', { class: 'jp-SharingHub-dim' }, `No versions: ${errorLine(error)}`));
      notifyError(error);
      return;
    }
    if (!versions.length) {
      this._tags = [];
      host.replaceChildren(el('p', {}, 'No versions.'));
      return;
    }
    if (!this._dest.value) {
      // the first listing proposes a destination; later ones (after a publish) keep the user's
      const base = this._host.defaultFolder() || this._host.currentFolder();
      const name = this.itemId.split('/').pop() ?? 'dataset';
      this._dest.value = base ? `${base.replace(/\/+$/, '')}/${name}` : name;
    }
    host.replaceChildren(
      el('label', { class: 'jp-SharingHub-destLabel' }, 'Destination ', this._dest),
      el(
        'table',
        { class: 'jp-SharingHub-versionTable' },
        el(
          'tbody',
          {},
          ...versions.map(v => {
            const size = v.outputs.reduce((a, o) => a + (o.size ?? 0), 0);
            const files = v.outputs.reduce((a, o) => a + (o.nfiles ?? 1), 0);
            const progress = el('div', { class: 'jp-SharingHub-job' });
            return el(
              'tr',
              { 'data-rev': v.rev },
              el('td', { class: 'jp-SharingHub-rev' }, v.rev),
              el('td', {}, v.kind),
              el('td', {}, shortDate(v.date)),
              el('td', {}, `${files} file${files === 1 ? '' : 's'}, ${humanSize(size)}`),
              el(
                'td',
                {},
                button('Pull into workspace', () => void this._pull(v.rev, progress), 'jp-SharingHub-pull'),
                button('Insert snippet', () => this._insertCode(pullSnippet(this.itemId, v.rev)), 'jp-SharingHub-snippet'),
                progress
              )
            );
          })
        )
      )
    );
    this._latestRev = versions[0].rev;
    this._tags = versions.filter(v => v.kind === 'tag').map(v => v.rev);
  }

  /** The header's snippet: track a model; pull a dataset at its newest version once known. */
  private _headerSnippet(): string {
    return itemSnippet(this._item?.collection ?? this.collection, this.itemId, this._latestRev);
  }

  private _insertCode(code: string): void {
    if (!this._host.insertSnippet(code)) {
      notifyError(new Error('Open a notebook first: the snippet goes into the active notebook'));
    }
  }

  /** Pulls `rev` into the destination; the folder opens in the file browser when done. */
  private async _pull(rev: string, host: HTMLElement): Promise<void> {
    const body = { item: this.itemId, rev, dest: this._dest.value.trim() || undefined };
    await this._runJob('sharinghub/api/dvc/pull', body, host, job => this._host.openFolder(job.dest));
  }

  /**
   * Starts a job (a pull or a publish: both answer `{job}` and are followed at
   * `api/dvc/jobs/{job}`) and shows its progress bar and a cancel button until it ends.
   */
  private async _runJob(
    route: string,
    body: Record<string, unknown>,
    host: HTMLElement,
    onDone: (job: IJob) => Promise<void>
  ): Promise<void> {
    let jobId: string;
    try {
      jobId = (await requestAPI<{ job: string }>(route, { method: 'POST', body })).job;
    } catch (error) {
      notifyError(error);
      return;
    }
    const jobPath = `sharinghub/api/dvc/jobs/${encodeURIComponent(jobId)}`;
    const bar = el('progress', { class: 'jp-SharingHub-progress', max: '1' });
    const text = el('span', { class: 'jp-SharingHub-jobState' }, 'queued');
    let cancelled = false;
    const cancel = button('Cancel', () => {
      cancelled = true;
      requestAPI(jobPath, { method: 'DELETE' }).catch(notifyError);
    }, 'jp-SharingHub-cancel');
    host.replaceChildren(bar, text, cancel);
    host.dataset.job = jobId;
    delete host.dataset.state;
    for (;;) {
      let job: IJob;
      try {
        job = await requestAPI<IJob>(jobPath);
      } catch (error) {
        notifyError(error);
        return;
      }
      const total = job.bytes_total || job.files_total;
      const done = job.bytes_total ? job.bytes_done : job.files_done;
      if (total) {
        bar.max = total;
        bar.value = done ?? 0;
      }
      text.textContent = ` ${job.state}${job.files_total ? ` ${job.files_done ?? 0}/${job.files_total} files` : ''}`;
      if (ENDED.has(job.state)) {
        cancel.remove();
        if (job.state === 'done') {
          bar.max = 1;
          bar.value = 1;
          await onDone(job);
        } else if (job.state === 'failed') {
          text.textContent = ` failed: ${job.error ?? 'unknown error'}`;
          notifyError(new Error(job.error ?? 'the job failed'));
        } else if (!cancelled) {
          text.textContent = ' cancelled';
        }
        host.dataset.state = job.state; // set last: tests wait for it, then look at the result
        return;
      }
      host.dataset.state = job.state;
      await new Promise(resolve => window.setTimeout(resolve, 500));
    }
  }
}

function errorLine(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A link that opens in a new tab; only http(s) URLs become links. */
function safeLink(href: string, label: string, download: boolean): HTMLElement {
  if (!/^https?:\/\//i.test(href)) {
    return el('span', {}, label);
  }
  return el('a', {
    href,
    target: '_blank',
    rel: 'noopener noreferrer',
    download: download ? '' : undefined
  }, label);
}
