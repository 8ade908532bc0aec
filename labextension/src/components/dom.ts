/** Tiny DOM helpers: every text from the server goes in as text, never as HTML. */

type Attrs = { [name: string]: string | undefined };

/** `el('div', {class: 'x'}, 'text', child)`: an element with attributes and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined) {
      node.setAttribute(name, value);
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child);
    }
  }
  return node;
}

/** A button that runs `action` on click. */
export function button(label: string, action: () => void, cls = ''): HTMLButtonElement {
  const b = el('button', { class: `jp-SharingHub-button ${cls}`.trim(), type: 'button' }, label);
  b.addEventListener('click', event => {
    event.stopPropagation();
    action();
  });
  return b;
}

/** Calls `fn` once `ms` milliseconds have passed without another call. */
export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number) {
  let timer: number | undefined;
  return (...args: A): void => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => fn(...args), ms);
  };
}

/** A byte count as "1.2 MB". */
export function humanSize(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) {
    return '';
  }
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}
