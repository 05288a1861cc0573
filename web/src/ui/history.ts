// History: payments, newest first, with a search over what is loaded.

import type { Payment } from '../wallet/api.js';
import { dateTime, msatToSats } from '../wallet/format.js';
import { failureReason, messageFor } from '../wallet/messages.js';
import { busy, errorBox, field, h, replace, statusBox } from './dom.js';
import type { Screen } from './screen.js';
import type { Wallet } from './wallet.js';

const PAGE = 50;

function statusWords(p: Payment): { text: string; tone: string } {
  if (p.direction === 'inbound') {
    if (p.status === 'succeeded') return { text: 'Received', tone: 'good' };
    if (p.status === 'pending') return { text: 'Waiting to be paid', tone: 'muted' };
    return { text: 'Not paid (expired or cancelled)', tone: 'muted' };
  }
  if (p.status === 'succeeded') return { text: 'Sent', tone: 'good' };
  if (p.status === 'pending') return { text: 'On its way', tone: 'warn' };
  return { text: 'Failed: no money left your wallet', tone: 'bad' };
}

/** Whether a payment matches the search text (description, payment hash, amount). */
export function matches(p: Payment, query: string): boolean {
  const q = query.trim().toLowerCase();
  if (!q) return true;
  if ((p.description ?? '').toLowerCase().includes(q)) return true;
  if (p.payment_hash.toLowerCase().includes(q)) return true;
  const digits = q.replace(/[\s,]/g, '').replace(/sats?$/, '');
  if (/^\d+(\.\d+)?$/.test(digits) && typeof p.amount_msat === 'number') {
    const sat = p.amount_msat / 1000;
    if (String(sat).includes(digits) || String(p.amount_msat) === digits) return true;
  }
  return false;
}

export function historyScreen(w: Wallet): Screen {
  const search = h('input', { type: 'search', name: 'search', autocomplete: 'off' });
  const list = h('ol', { class: 'plain payments' });
  const summary = statusBox('small muted');
  const error = errorBox();
  const more = h('button', { type: 'button', hidden: true }, 'Show older payments');
  let payments: Payment[] = [];
  let cursor: string | undefined;

  const render = (): void => {
    const shown = payments.filter((p) => matches(p, search.value));
    replace(
      list,
      shown.map((p) => {
        const s = statusWords(p);
        const sign = p.direction === 'inbound' ? '+' : '−';
        return h(
          'li',
          { class: `payment ${s.tone}` },
          h(
            'div',
            { class: 'payment-main' },
            h('span', { class: 'payment-amount' }, typeof p.amount_msat === 'number' ? `${sign}${msatToSats(p.amount_msat)}` : 'Any amount'),
            h('span', { class: `payment-status ${s.tone}` }, s.text),
          ),
          h('p', { class: 'payment-desc' }, p.description ? p.description : h('span', { class: 'muted' }, 'No description')),
          h(
            'p',
            { class: 'small muted' },
            dateTime(p.created_at),
            p.fee_msat ? ` · fee ${msatToSats(p.fee_msat)}` : '',
          ),
          p.status === 'failed' && p.direction === 'outbound' ? h('p', { class: 'small' }, failureReason(p.failure_reason)) : null,
          h('details', null, h('summary', null, 'Payment hash'), h('p', { class: 'mono small' }, p.payment_hash)),
        );
      }),
    );
    const total = payments.length;
    summary.set(
      total === 0
        ? 'No payments yet.'
        : search.value.trim()
          ? `${shown.length} of the ${total} payments loaded match.${cursor ? ' Show older payments to search further back.' : ''}`
          : `${total} payment${total === 1 ? '' : 's'}${cursor ? ' (more below)' : ''}.`,
    );
    more.hidden = !cursor;
  };

  const loadPage = async (reset: boolean): Promise<void> => {
    error.clear();
    try {
      const res = await w.rpc.call('list_payments', { limit: PAGE, ...(reset || !cursor ? {} : { cursor }) });
      payments = reset ? res.payments : [...payments, ...res.payments];
      cursor = res.next_cursor ?? undefined;
      render();
    } catch (e) {
      error.show(messageFor(e));
    }
  };

  search.addEventListener('input', render);
  more.addEventListener('click', () => void busy(more, 'Loading…', () => loadPage(false)));
  const unsubscribe = w.rpc.subscribe((e) => {
    if (e.kind.startsWith('payment_') || e.kind === 'lagged') void loadPage(true);
  });
  void loadPage(true);

  const el = h(
    'section',
    { class: 'screen' },
    h('h1', null, 'History'),
    h('form', { role: 'search', class: 'card', onsubmit: (e: Event) => e.preventDefault() }, field('Search payments', search, 'By description, amount in sats, or payment hash.')),
    summary.el,
    error.el,
    list,
    more,
  );
  return { el, dispose: unsubscribe };
}
