// Send: paste a payment request, read it here (not the node's reading), confirm, sign, pay.

import { newAppRequest, signAppRequest } from '../wallet/appRequest.js';
import { dateTime, msatToSats, perPeriod, relative, sats } from '../wallet/format.js';
import { decodeInvoice, type Invoice } from '../wallet/invoice.js';
import { failureReason, messageFor } from '../wallet/messages.js';
import { busy, enterSubmits, errorBox, field, h, replace } from './dom.js';
import type { Screen } from './screen.js';
import type { Wallet } from './wallet.js';

const NETWORK_NAMES: Record<string, string> = {
  bitcoin: 'real bitcoin (mainnet)',
  testnet: 'the test network (testnet)',
  signet: 'the test network (signet)',
  regtest: 'a private test network (regtest)',
  simnet: 'a simulation network (simnet)',
};

/** An error whose message is already written for the person. */
class ShownError extends Error {}

/** How long pay_invoice may take: the node answers within 60 s (pending after that). */
const PAY_TIMEOUT_MS = 90_000;

export function sendScreen(w: Wallet): Screen {
  const title = h('h1', null, 'Send money');
  if (!w.canPay()) {
    return {
      el: h(
        'section',
        { class: 'screen' },
        title,
        h(
          'div',
          { class: 'card' },
          h('p', null, 'This pairing cannot send money. It was made to look at your wallet (and perhaps receive), without a payment key.'),
          h('p', null, 'To pay from this device, make a new pairing at your signer that allows payments, then forget this wallet and connect again.'),
        ),
      ),
    };
  }

  const input = h('textarea', { name: 'invoice', rows: 4, class: 'mono', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', required: true });
  enterSubmits(input);
  const check = h('button', { type: 'submit', class: 'primary' }, 'Check payment request');
  const error = errorBox();
  const form = h(
    'form',
    { class: 'card', novalidate: true },
    field('Payment request (invoice)', input, [
      'Paste the payment request you were given. It starts with ',
      h('code', null, 'lnbc'),
      ' (on test networks ',
      h('code', null, 'lntb'),
      ' or ',
      h('code', null, 'lnbcrt'),
      ').',
    ]),
    error.el,
    check,
  );
  const review = h('div');

  const reset = (): void => {
    replace(review);
    form.hidden = false;
    input.focus();
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (check.disabled) return;
    error.clear();
    input.removeAttribute('aria-invalid');
    let inv: Invoice;
    try {
      inv = decodeInvoice(input.value);
    } catch (e) {
      input.setAttribute('aria-invalid', 'true');
      error.show(messageFor(e));
      return;
    }
    const problem = refuse(inv, w);
    if (problem) {
      input.setAttribute('aria-invalid', 'true');
      error.show(problem);
      return;
    }
    void busy(check, 'Checking…', async () => {
      try {
        const amountSat = Math.ceil(inv.amountMsat! / 1000);
        const { max_fee_sat } = await w.rpc.call('fee_limit', { amount_sat: amountSat });
        showReview(inv, max_fee_sat);
      } catch (e) {
        error.show(messageFor(e));
      }
    });
  });

  const showReview = (inv: Invoice, maxFee: number): void => {
    form.hidden = true;
    const pay = h('button', { type: 'button', class: 'primary' }, `Pay ${msatToSats(inv.amountMsat!)}`);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const outcome = h('div', { 'aria-live': 'polite' });
    const payError = errorBox();
    const budget =
      w.auth.budget_sat !== null
        ? h('p', { class: 'small muted' }, `Your signer lets this device spend up to ${sats(w.auth.budget_sat)} ${perPeriod(w.auth.period_secs)}.`)
        : null;
    cancel.addEventListener('click', reset);
    pay.addEventListener('click', () => {
      payError.clear();
      if (Math.floor(Date.now() / 1000) >= inv.expiresAt) {
        payError.show('This payment request has expired. Ask for a new one.');
        return;
      }
      cancel.disabled = true;
      void busy(pay, 'Paying… (this can take up to a minute)', async () => {
        try {
          // The request names the payment hash and amount read here, signed with this device's key.
          const request = newAppRequest('pay_invoice', inv.paymentHash, inv.amountMsat!);
          const signed = signAppRequest(request, w.appKey!);
          const p = await w.rpc.call('pay_invoice', { invoice: inv.bolt11, app_request: signed }, { timeoutMs: PAY_TIMEOUT_MS });
          if (p.payment_hash && p.payment_hash.toLowerCase() !== inv.paymentHash) {
            throw new ShownError('Your node answered about another payment. Check History before trying again.');
          }
          pay.hidden = true;
          cancel.hidden = true;
          showOutcome(outcome, p.status, inv, p.fee_msat, p.failure_reason);
        } catch (e) {
          payError.show(e instanceof ShownError ? e.message : messageFor(e));
        } finally {
          cancel.disabled = false;
        }
      });
    });
    replace(
      review,
      h(
        'div',
        { class: 'card review' },
        h('h2', null, 'Check before you pay'),
        h(
          'dl',
          { class: 'facts' },
          h('dt', null, 'Amount'),
          h('dd', { class: 'big', 'data-testid': 'pay-amount' }, msatToSats(inv.amountMsat!)),
          h('dt', null, 'Description'),
          h('dd', null, inv.description ? `“${inv.description}”` : inv.descriptionHash ? 'Not included in the request (only its fingerprint is).' : 'None'),
          h('dt', null, 'Fees'),
          h('dd', { 'data-testid': 'max-fee' }, `At most ${sats(maxFee)} (what the network charges to carry the payment)`),
          h('dt', null, 'Total at most'),
          h('dd', null, msatToSats(inv.amountMsat! + maxFee * 1000)),
          h('dt', null, 'Expires'),
          h('dd', null, `${relative(inv.expiresAt)} (${dateTime(inv.expiresAt)})`),
        ),
        h('details', null, h('summary', null, 'Technical details'), h('dl', { class: 'facts mono small' }, h('dt', null, 'Payment hash'), h('dd', null, inv.paymentHash), h('dt', null, 'Paying node'), h('dd', null, inv.payee), h('dt', null, 'Network'), h('dd', null, NETWORK_NAMES[inv.network] ?? inv.network))),
        budget,
        payError.el,
        h('div', { class: 'row' }, pay, cancel),
        outcome,
      ),
    );
    pay.focus();
  };

  const showOutcome = (box: HTMLElement, status: string, inv: Invoice, feeMsat: number | null | undefined, reason: string | null | undefined): void => {
    const again = h('button', { type: 'button' }, 'Send another payment');
    again.addEventListener('click', () => {
      input.value = '';
      reset();
    });
    if (status === 'succeeded') {
      const fee = feeMsat ?? 0;
      replace(
        box,
        h(
          'div',
          { class: 'status success', role: 'status', 'data-testid': 'sent', 'data-fee-msat': String(fee), 'data-fee-sat': String(Math.floor(fee / 1000)) },
          h('p', { class: 'outcome-title' }, `Sent ${msatToSats(inv.amountMsat!)} ✓`),
          h('p', null, `The fee was ${msatToSats(fee)}.`),
        ),
        again,
      );
    } else if (status === 'failed') {
      replace(box, h('div', { class: 'status failure', role: 'alert' }, h('p', { class: 'outcome-title' }, 'The payment failed. No money left your wallet.'), h('p', null, failureReason(reason))), again);
    } else {
      replace(box, h('div', { class: 'status waiting', role: 'status' }, h('p', { class: 'outcome-title' }, 'Your payment is still on its way.'), h('p', null, 'This can happen when the network is slow. Look in History in a minute: do not pay again before it has failed.')), again);
    }
    again.focus();
  };

  const el = h('section', { class: 'screen' }, title, form, review);
  return { el };
}

/** Why this invoice cannot be paid from here, or null. */
function refuse(inv: Invoice, w: Wallet): string | null {
  const net = w.network();
  if (net && inv.network !== net) {
    return `This payment request is for ${NETWORK_NAMES[inv.network] ?? inv.network}, but your node is on ${NETWORK_NAMES[net] ?? net}. It cannot be paid from here.`;
  }
  if (inv.amountMsat === null) {
    return 'This payment request does not say how much to pay. This wallet can only pay requests with an amount for now: ask for one with the amount in it.';
  }
  if (Math.floor(Date.now() / 1000) >= inv.expiresAt) {
    return `This payment request expired ${relative(inv.expiresAt)}. Ask for a new one.`;
  }
  return null;
}
