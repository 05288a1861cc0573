// Home: what you have, what you can receive, and whether your keys are online.

import type { Balance, GetInfo, SignerState } from '../wallet/api.js';
import { dateTime, perPeriod, sats } from '../wallet/format.js';
import { messageFor } from '../wallet/messages.js';
import { busy, errorBox, h, replace, statusBox } from './dom.js';
import type { Screen } from './screen.js';
import type { Wallet } from './wallet.js';

const SIGNER_WORDS: Record<SignerState, { title: string; text: string; tone: string }> = {
  connected: {
    title: 'Your keys are online: payments work.',
    text: 'Your signer, which holds the keys to your money, is connected to your node.',
    tone: 'good',
  },
  offline: {
    title: 'Your signer is offline: you cannot pay until it is back. Your money is safe.',
    text: 'Your node cannot move money without your signer. Start your signer again to send payments.',
    tone: 'warn',
  },
  revoked: {
    title: 'You revoked this node’s access: it can no longer move your money.',
    text: 'To get your money out, use your signer’s recovery: the Recovery page says how.',
    tone: 'bad',
  },
  local: {
    title: 'This node keeps its own keys.',
    text: 'It does not use a separate signer, so whoever runs the node could move the money.',
    tone: 'warn',
  },
};

export function homeScreen(w: Wallet): Screen {
  const spendable = h('p', { class: 'big', 'data-testid': 'spendable', 'aria-live': 'polite' }, '…');
  const receivable = h('dd', { 'data-testid': 'receivable' }, '…');
  const onchain = h('dd', { 'data-testid': 'onchain' }, '…');
  const extra = h('div');
  const signer = h('div', { class: 'card signer', 'data-testid': 'signer' }, h('p', null, 'Checking your keys…'));
  const error = errorBox();
  const refreshed = statusBox('small muted');
  const refresh = h('button', { type: 'button' }, 'Refresh');

  const showBalance = (b: Balance): void => {
    replace(spendable, sats(b.spendable_sat));
    spendable.dataset.sat = String(b.spendable_sat);
    replace(receivable, sats(b.receivable_sat));
    replace(onchain, sats(b.onchain_sat));
    const lines: HTMLElement[] = [];
    if (b.onchain_pending_sat > 0) {
      lines.push(h('p', { class: 'small' }, `${sats(b.onchain_pending_sat)} on its way to your savings (waiting for the Bitcoin network to confirm it).`));
    }
    if (b.closing_sat > 0) {
      lines.push(h('p', { class: 'small' }, `${sats(b.closing_sat)} coming back from closed channels (this can take about a day).`));
    }
    replace(extra, lines);
  };

  const showInfo = (info: GetInfo): void => {
    const words = SIGNER_WORDS[info.signer] ?? {
      title: 'Your node reported an unknown signer state.',
      text: String(info.signer),
      tone: 'warn',
    };
    signer.className = `card signer ${words.tone}`;
    signer.dataset.state = info.signer;
    replace(signer, h('p', { class: 'signer-title' }, words.title), h('p', { class: 'small' }, words.text));
    if (info.usable_channels === 0) {
      signer.append(h('p', { class: 'small' }, 'You have no open channel yet, so you cannot send or receive over Lightning. Your provider opens one for you.'));
    }
  };

  let loading: Promise<void> | null = null;
  const load = (): Promise<void> => {
    loading ??= (async () => {
      error.clear();
      try {
        const [info, balance] = await Promise.all([w.rpc.call('get_info', {}), w.rpc.call('balance', {})]);
        showInfo(info);
        showBalance(balance);
        refreshed.set(`Updated ${new Date().toLocaleTimeString()}`);
      } catch (e) {
        error.show(messageFor(e));
      } finally {
        loading = null;
      }
    })();
    return loading;
  };

  refresh.addEventListener('click', () => void busy(refresh, 'Refreshing…', load));
  const unsubscribe = w.rpc.subscribe((e) => {
    if (e.kind !== 'payment_failed') void load();
  });
  const unState = w.rpc.onState((s) => {
    if (s.state === 'connected') void load();
  });
  // The signer's state has no event: look again every 30 s while this screen is open.
  const timer = setInterval(() => void load(), 30_000);
  void load();

  const budget = w.auth.budget_sat !== null && w.canPay()
    ? h('p', { class: 'small muted' }, `This device may spend up to ${sats(w.auth.budget_sat)} ${perPeriod(w.auth.period_secs)}.`)
    : null;

  const access = w.auth.expires_at
    ? h('p', { class: 'small muted' }, `This device’s access to your node ends on ${dateTime(w.auth.expires_at)}; pair again before then to keep using it.`)
    : null;

  const el = h(
    'section',
    { class: 'screen' },
    h('h1', null, 'Your balance'),
    h(
      'div',
      { class: 'card balance' },
      h('p', { class: 'label', id: 'spendable-label' }, 'You can spend'),
      spendable,
      budget,
      h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'You can receive up to'),
        receivable,
        h('dd', { class: 'explain' }, 'How much more your channels can take in right now.'),
        h('dt', null, 'Savings on the Bitcoin blockchain'),
        onchain,
        h('dd', { class: 'explain' }, 'Money outside Lightning: slower and costlier to move, but yours all the same.'),
      ),
      extra,
      h('p', { class: 'small muted' }, '1 sat (satoshi) is one hundred-millionth of a bitcoin.'),
    ),
    h('div', { class: 'row actions' }, h('a', { href: '#/receive', class: 'button primary' }, 'Receive money'), h('a', { href: '#/send', class: 'button primary' }, 'Send money')),
    signer,
    error.el,
    h('div', { class: 'row' }, refresh, refreshed.el),
    access,
  );
  return {
    el,
    dispose() {
      unsubscribe();
      unState();
      clearInterval(timer);
    },
  };
}
