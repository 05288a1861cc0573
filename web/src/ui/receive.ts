// Receive: an amount and a note make a payment request (invoice); the page says when it is paid.

import { decodeInvoice } from '../wallet/invoice.js';
import { msatToSats, parseSats, relative, sats } from '../wallet/format.js';
import { messageFor } from '../wallet/messages.js';
import { busy, copyText, errorBox, field, h, replace, statusBox } from './dom.js';
import { qrCode } from './qr.js';
import type { Screen } from './screen.js';
import type { Wallet } from './wallet.js';

const EXPIRY_SECS = 3600;

export function receiveScreen(w: Wallet): Screen {
  if (!w.canReceive()) {
    return {
      el: h('section', { class: 'screen' }, h('h1', null, 'Receive money'), h('p', { class: 'card' }, 'This pairing may only look at your wallet: it cannot create payment requests.')),
    };
  }
  const amount = h('input', { type: 'text', inputmode: 'numeric', name: 'amount', autocomplete: 'off', required: true, pattern: '[0-9 ,]*' });
  const note = h('input', { type: 'text', name: 'note', maxlength: 200, autocomplete: 'off' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create payment request');
  const error = errorBox();
  const result = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'card', novalidate: true },
    field('Amount (sats)', amount, '1 sat is one hundred-millionth of a bitcoin.'),
    field('Note for the payer (optional)', note, 'The payer sees it, for example “Dinner on Friday”.'),
    error.el,
    submit,
  );

  let waitingFor: { hash: string; status: ReturnType<typeof statusBox>; done: boolean } | null = null;

  const markPaid = (amountMsat: number | null | undefined): void => {
    if (!waitingFor || waitingFor.done) return;
    waitingFor.done = true;
    const text = typeof amountMsat === 'number' ? `Received ${msatToSats(amountMsat)} ✓` : 'Received ✓';
    waitingFor.status.el.className = 'status success';
    waitingFor.status.el.dataset.receivedSat = typeof amountMsat === 'number' ? String(Math.floor(amountMsat / 1000)) : '';
    waitingFor.status.set(text);
  };

  // If events were missed (a reconnection), look the payment up.
  const check = async (): Promise<void> => {
    if (!waitingFor || waitingFor.done) return;
    try {
      const page = await w.rpc.call('list_payments', { limit: 50 });
      const p = page.payments.find((x) => x.payment_hash === waitingFor?.hash && x.direction === 'inbound');
      if (p?.status === 'succeeded') markPaid(p.amount_msat);
    } catch {
      // the next event or reconnection tries again
    }
  };

  const unsubscribe = w.rpc.subscribe((e) => {
    if (e.kind === 'payment_received' && waitingFor && e.payment_hash === waitingFor.hash) markPaid(e.amount_msat);
    if (e.kind === 'lagged') void check();
  });

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (submit.disabled) return;
    error.clear();
    amount.removeAttribute('aria-invalid');
    const n = parseSats(amount.value);
    if (n === null || n <= 0) {
      amount.setAttribute('aria-invalid', 'true');
      error.show('Type an amount in sats, a whole number above 0 (for example 1000).');
      amount.focus();
      return;
    }
    void busy(submit, 'Creating…', async () => {
      try {
        const res = await w.rpc.call('create_invoice', { amount_sat: n, description: note.value.trim(), expiry_secs: EXPIRY_SECS });
        // Check the node's invoice says what was asked before showing it.
        const inv = decodeInvoice(res.invoice);
        if (inv.paymentHash !== res.payment_hash || inv.amountMsat !== n * 1000) {
          throw new Error('invoice mismatch');
        }
        showInvoice(res.invoice, inv.paymentHash, n, res.expires_at);
      } catch (e) {
        error.show(e instanceof Error && e.message === 'invoice mismatch' ? 'Your node made a payment request that does not match what you asked. Do not share it; try again.' : messageFor(e));
      }
    });
  });

  const showInvoice = (invoice: string, hash: string, n: number, expiresAt: number): void => {
    const status = statusBox('status waiting');
    status.set('Waiting for the payment…');
    waitingFor = { hash, status, done: false };
    const text = h('textarea', { readonly: true, rows: 4, class: 'mono', 'aria-label': 'Payment request text' });
    text.value = invoice;
    const copy = h('button', { type: 'button' }, 'Copy payment request');
    copy.addEventListener('click', () => void copyText(invoice, copy, text));
    const another = h('button', { type: 'button', class: 'link-button' }, 'Create another');
    another.addEventListener('click', () => {
      waitingFor = null;
      replace(result);
      form.hidden = false;
      amount.value = '';
      note.value = '';
      amount.focus();
    });
    form.hidden = true;
    replace(
      result,
      h(
        'div',
        { class: 'card invoice' },
        h('h2', null, `Payment request for ${sats(n)}`),
        h('p', null, 'Show this code to the person paying you, or copy the text and send it to them. It works once and expires ', relative(expiresAt), '.'),
        qrCode(invoice, `QR code of the payment request for ${sats(n)}`, 'invoice'),
        text,
        h('div', { class: 'row' }, copy),
        status.el,
        another,
      ),
    );
    copy.focus();
  };

  const el = h('section', { class: 'screen' }, h('h1', null, 'Receive money'), form, result);
  return { el, dispose: unsubscribe };
}
