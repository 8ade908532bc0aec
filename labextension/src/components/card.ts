/** A result card of the sidebar: server text goes in as text (see `el`), never as HTML. */
import { excerpt, IStacItem, shortDate, thumbnail } from '../model';
import { el } from './dom';

/**
 * Thumbnail, title, description excerpt, date, stars and keywords of `item`; a click
 * or Enter calls `open`.
 */
export function itemCard(item: IStacItem, open: (item: IStacItem) => void): HTMLLIElement {
  const p = item.properties;
  const thumb = thumbnail(item);
  const stars = p['sharinghub:stars'];
  const card = el(
    'li',
    { class: 'jp-SharingHub-card', tabindex: '0', 'data-item': item.id },
    thumb
      ? el('img', { class: 'jp-SharingHub-thumb', src: thumb.href, alt: '', loading: 'lazy' })
      : el('div', { class: 'jp-SharingHub-thumb jp-SharingHub-noThumb' }, item.collection ?? ''),
    el(
      'div',
      { class: 'jp-SharingHub-cardBody' },
      el('div', { class: 'jp-SharingHub-cardTitle' }, p.title || item.id),
      el('div', { class: 'jp-SharingHub-cardText' }, excerpt(p.description, 160, p.title ?? '')),
      el(
        'div',
        { class: 'jp-SharingHub-cardMeta' },
        el('span', {}, shortDate(p.datetime ?? p.updated).slice(0, 10)),
        typeof stars === 'number' ? el('span', {}, `★ ${stars}`) : null,
        ...((p.keywords as string[]) ?? [])
          .slice(0, 5)
          .map(k => el('span', { class: 'jp-SharingHub-keyword' }, k))
      )
    )
  );
  card.addEventListener('click', () => open(item));
  card.addEventListener('keydown', event => {
    if (event.key === 'Enter') {
      open(item);
    }
  });
  return card;
}
