// Connected apps (Nostr Wallet Connect): each app gets its own key, made here, and a spending
// limit signed with this device's key; the link with the app's secret is shown once.

import type { NwcConnection } from '../wallet/api.js';
import { dateTime, perPeriod, parseSats, sats } from '../wallet/format.js';
import { messageFor } from '../wallet/messages.js';
import { newNwcKeys, nwcUri, PERIODS, signDelegation, type PeriodName } from '../wallet/nwc.js';
import { busy, copyText, errorBox, field, h, replace, statusBox } from './dom.js';
import { qrCode } from './qr.js';
import type { Screen } from './screen.js';
import type { Wallet } from './wallet.js';

const STATUS_WORDS: Record<string, string> = {
  active: 'Active',
  revoked: 'Revoked: it can no longer spend',
  expired: 'Expired: it can no longer spend',
};

export function appsScreen(w: Wallet): Screen {
  const list = h('div', { class: 'app-list', 'aria-live': 'polite' }, h('p', null, 'Loading your apps…'));
  const listError = errorBox();
  const created = h('div');

  const load = async (): Promise<void> => {
    listError.clear();
    try {
      const { connections } = await w.rpc.call('nwc_list', {});
      showList(connections);
    } catch (e) {
      replace(list);
      listError.show(messageFor(e));
    }
  };

  const showList = (connections: NwcConnection[]): void => {
    if (connections.length === 0) {
      replace(list, h('p', { class: 'muted' }, 'No apps are connected yet.'));
      return;
    }
    replace(
      list,
      h('ul', { class: 'plain' }, connections.map((c) => h('li', null, appCard(c)))),
    );
  };

  const appCard = (c: NwcConnection): HTMLElement => {
    const active = c.status === 'active';
    const card = h(
      'div',
      { class: `card app ${active ? '' : 'inactive'}`, 'data-app-id': String(c.id) },
      h('h3', null, c.name || 'Unnamed app'),
      h('p', { class: 'small' }, STATUS_WORDS[c.status] ?? c.status),
      h(
        'p',
        null,
        `Spent ${sats(c.spent_sat)} of ${sats(c.budget_sat)} ${perPeriod(c.period_secs)}`,
        active && c.period_secs > 0 ? ' (the limit renews as time passes)' : '',
        '.',
      ),
      c.expires_at ? h('p', { class: 'small' }, `Stops working on ${dateTime(c.expires_at)}.`) : null,
    );
    if (active) {
      const revoke = h('button', { type: 'button', class: 'danger' }, 'Revoke');
      revoke.setAttribute('aria-label', `Revoke ${c.name}`);
      const confirm = h('div', { class: 'confirm', hidden: true });
      const yes = h('button', { type: 'button', class: 'danger' }, 'Yes, revoke');
      yes.setAttribute('aria-label', `Yes, revoke ${c.name}`);
      const no = h('button', { type: 'button' }, 'Keep it');
      const err = errorBox();
      confirm.append(h('p', null, `Revoke “${c.name}”? It will no longer be able to spend from your wallet. This cannot be undone.`), h('div', { class: 'row' }, yes, no), err.el);
      revoke.addEventListener('click', () => {
        confirm.hidden = false;
        revoke.hidden = true;
        no.focus();
      });
      no.addEventListener('click', () => {
        confirm.hidden = true;
        revoke.hidden = false;
        revoke.focus();
      });
      yes.addEventListener('click', () => {
        no.disabled = true;
        void busy(yes, 'Revoking…', async () => {
          try {
            await w.rpc.call('nwc_revoke', { id: c.id });
            announce.set(`“${c.name}” is revoked.`);
            await load();
            (list.querySelector('h3') as HTMLElement | null)?.focus();
          } catch (e) {
            err.show(messageFor(e));
          } finally {
            no.disabled = false;
          }
        });
      });
      card.append(revoke, confirm);
    }
    return card;
  };

  const announce = statusBox('status success');

  // The form to connect a new app.
  let form: HTMLFormElement | null = null;
  if (w.canPay()) {
    const name = h('input', { type: 'text', name: 'app-name', maxlength: 64, autocomplete: 'off', required: true });
    const budget = h('input', { type: 'text', inputmode: 'numeric', name: 'budget', autocomplete: 'off', required: true });
    const period = h(
      'select',
      { name: 'period' },
      h('option', { value: 'day' }, 'Every day'),
      h('option', { value: 'week' }, 'Every week'),
      h('option', { value: 'month' }, 'Every month (30 days)'),
      h('option', { value: 'none' }, 'Never (a total for the app’s whole life)'),
    );
    const days = h('input', { type: 'text', inputmode: 'numeric', name: 'expiry-days', autocomplete: 'off' });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Create connection');
    const error = errorBox();
    form = h(
      'form',
      { class: 'card', novalidate: true },
      h('h2', null, 'Connect a new app'),
      field('App name', name, 'So you can recognise it later, for example “Podcast app”.'),
      field('Spending limit (sats)', budget, 'The most this app may spend in each period.'),
      field('Limit resets', period),
      field('Stops working after (days, optional)', days, 'Leave empty to keep it until you revoke it.'),
      error.el,
      submit,
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (submit.disabled) return;
      error.clear();
      for (const el of [name, budget, days]) el.removeAttribute('aria-invalid');
      const appName = name.value.trim();
      if (!appName) {
        name.setAttribute('aria-invalid', 'true');
        error.show('Give the app a name.');
        name.focus();
        return;
      }
      const budgetSat = parseSats(budget.value);
      if (budgetSat === null || budgetSat <= 0) {
        budget.setAttribute('aria-invalid', 'true');
        error.show('Type a spending limit in sats, a whole number above 0.');
        budget.focus();
        return;
      }
      let expiresAt: number | undefined;
      if (days.value.trim()) {
        const d = parseSats(days.value);
        if (d === null || d <= 0 || d > 3650) {
          days.setAttribute('aria-invalid', 'true');
          error.show('Type a number of days between 1 and 3650, or leave it empty.');
          days.focus();
          return;
        }
        expiresAt = Math.floor(Date.now() / 1000) + d * 86_400;
      }
      const periodSecs = PERIODS[period.value as PeriodName] ?? 0;
      void busy(submit, 'Creating…', async () => {
        const keys = newNwcKeys();
        try {
          const delegation = signDelegation(w.appKey!, keys.pubkey, budgetSat, periodSecs, expiresAt);
          const res = await w.rpc.call('nwc_create', {
            name: appName,
            app_pubkey: keys.pubkey,
            budget_sat: budgetSat,
            period_secs: periodSecs,
            ...(expiresAt !== undefined ? { expires_at: expiresAt } : {}),
            delegation,
          });
          const uri = nwcUri(res.wallet_pubkey, res.relays, keys.secret);
          keys.secret.fill(0);
          form!.hidden = true;
          showCreated(appName, uri, () => {
            form!.hidden = false;
            name.value = '';
            budget.value = '';
            days.value = '';
          });
          void load();
        } catch (e) {
          keys.secret.fill(0);
          error.show(messageFor(e));
        }
      });
    });
  }

  const showCreated = (appName: string, uri: string, done: () => void): void => {
    const text = h('textarea', { readonly: true, rows: 4, class: 'mono', 'aria-label': 'Connection link' });
    text.value = uri;
    const copy = h('button', { type: 'button' }, 'Copy connection link');
    copy.addEventListener('click', () => void copyText(uri, copy, text));
    const ok = h('button', { type: 'button', class: 'primary' }, 'I have saved it');
    ok.addEventListener('click', () => {
      text.value = '';
      replace(created);
      done();
      announce.set('The connection link is hidden now.');
    });
    replace(
      created,
      h(
        'div',
        { class: 'card created', 'data-testid': 'nwc-created' },
        h('h2', { tabindex: '-1' }, `“${appName}” is connected`),
        h('p', { class: 'warning' }, h('strong', null, 'This link is shown only once. '), 'Scan it with the app or copy it into the app now. Anyone with this link can spend up to the limit you set; keep it private. If you lose it, revoke this app and connect it again.'),
        qrCode(uri, `QR code of the connection link for ${appName}`),
        text,
        h('div', { class: 'row' }, copy, ok),
      ),
    );
    (created.querySelector('h2') as HTMLElement).focus();
  };

  const intro = h(
    'p',
    null,
    'Apps such as wallets, games or podcast players can pay from your balance through Nostr Wallet Connect (NWC), up to a limit you choose. Your signer enforces the limit, and you can revoke an app at any time.',
  );
  const readOnly = w.canPay() ? null : h('p', { class: 'card' }, 'This pairing cannot send money, so it cannot connect apps either. You can still see and revoke the apps connected to your wallet.');

  const unState = w.rpc.onState((s) => {
    if (s.state === 'connected') void load();
  });
  void load();

  const el = h('section', { class: 'screen' }, h('h1', null, 'Connected apps'), intro, readOnly, announce.el, created, form, h('h2', null, 'Your apps'), listError.el, list);
  return { el, dispose: unState };
}
