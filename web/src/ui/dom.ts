// A few DOM helpers: the UI is plain DOM, no framework. Text always goes in as text nodes
// (never as HTML), so nothing the node or an invoice says can become markup.

export type Child = Node | string | number | null | undefined | false | Child[];
type AttrValue = string | number | boolean | null | undefined | ((e: any) => void);
export type Attrs = Record<string, AttrValue>;

const PROPS = new Set(['value', 'checked']);

function apply(el: Element, attrs: Attrs | null | undefined): void {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (PROPS.has(k)) {
      (el as unknown as Record<string, unknown>)[k] = v;
    } else if (k === 'class') {
      el.setAttribute('class', String(v));
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** An element: `h('button', {type: 'submit', onClick: f}, 'Pay')`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function svg(tag: string, attrs?: Attrs | null, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el as SVGElement;
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

let counter = 0;
export function uid(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A labelled form field; the hint is the input's description. */
export function field(
  label: string,
  input: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement,
  hint?: Child,
): HTMLDivElement {
  if (!input.id) input.id = uid('f');
  const hintEl = hint ? h('p', { class: 'hint', id: `${input.id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), hintEl, input);
}

/** A paragraph that says what went wrong, read out when it changes. */
export function errorBox(): { el: HTMLParagraphElement; show(message: string): void; clear(): void } {
  const el = h('p', { class: 'error', role: 'alert', hidden: true });
  return {
    el,
    show(message) {
      el.textContent = message;
      el.hidden = false;
    },
    clear() {
      el.textContent = '';
      el.hidden = true;
    },
  };
}

/** A polite live region for progress and outcomes. */
export function statusBox(cls = 'status'): { el: HTMLParagraphElement; set(text: Child): void } {
  const el = h('p', { class: cls, role: 'status' });
  return {
    el,
    set(text) {
      replace(el, text);
    },
  };
}

/** A spinner with its words. */
export function working(text: string): HTMLSpanElement {
  return h('span', { class: 'working' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

/**
 * Runs `fn` with the button disabled and saying what is happening ("Working…" by default);
 * puts the button back afterwards.
 */
export async function busy<T>(button: HTMLButtonElement, text: string, fn: () => Promise<T>): Promise<T> {
  const before = [...button.childNodes];
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  replace(button, working(text));
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    replace(button, before);
  }
}

/** Copies text; the button says "Copied" for a moment. */
export async function copyText(text: string, button: HTMLButtonElement, fallbackField?: HTMLTextAreaElement | HTMLInputElement): Promise<boolean> {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    if (fallbackField) {
      fallbackField.focus();
      fallbackField.select();
      try {
        ok = document.execCommand('copy');
      } catch {
        ok = false;
      }
    }
  }
  const before = [...button.childNodes];
  replace(button, ok ? 'Copied ✓' : 'Select the text and copy it');
  setTimeout(() => replace(button, before), 2000);
  return ok;
}

/** Moves focus to a screen's heading so keyboard and screen-reader users start there. */
export function focusHeading(root: Element): void {
  const h1 = root.querySelector('h1');
  if (h1) {
    h1.setAttribute('tabindex', '-1');
    h1.focus({ preventScroll: false });
  }
}

/** Submits a form with Enter from a textarea (Shift+Enter still makes a new line). */
export function enterSubmits(textarea: HTMLTextAreaElement): void {
  textarea.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      textarea.form?.requestSubmit();
    }
  });
}
