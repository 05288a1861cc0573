// Keys & recovery: what the tenant keeps, why the operator cannot take the money, and how to
// leave (docs/recovery.md in plain words).

import { h } from './dom.js';
import type { Screen } from './screen.js';

export function recoveryScreen(onForget?: () => void): Screen {
  const code = (text: string): HTMLElement => h('code', null, text);
  const forget = onForget
    ? (() => {
        const button = h('button', { type: 'button', class: 'danger' }, 'Forget this wallet on this device');
        const confirm = h('div', { class: 'confirm', hidden: true });
        const yes = h('button', { type: 'button', class: 'danger' }, 'Yes, forget it');
        const no = h('button', { type: 'button' }, 'Cancel');
        confirm.append(h('p', null, 'Remove this wallet from this browser? Your money is not affected. To use it here again you will need new pairing words.'), h('div', { class: 'row' }, yes, no));
        button.addEventListener('click', () => {
          confirm.hidden = false;
          button.hidden = true;
          no.focus();
        });
        no.addEventListener('click', () => {
          confirm.hidden = true;
          button.hidden = false;
          button.focus();
        });
        yes.addEventListener('click', onForget);
        return h('div', { class: 'card' }, h('h2', null, 'This device'), h('p', null, 'This browser keeps a key to talk to your node and, if this pairing may pay, a payment key, all locked with your password. Forgetting it removes them from this browser only.'), button, confirm);
      })()
    : null;

  const el = h(
    'section',
    { class: 'screen prose' },
    h('h1', null, 'Keys & recovery'),
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'Who can move your money'),
      h('p', null, 'Your money sits in two places: in ', h('strong', null, 'channels'), ' (your Lightning balance, for fast payments) and in ', h('strong', null, 'savings on the Bitcoin blockchain'), '. Both are controlled by keys that only ', h('strong', null, 'your signer'), ' holds, on a computer of yours.'),
      h('p', null, 'The company that runs your node never has those keys. Your signer approves a payment only when it comes with a request signed by one of your own devices or apps, within the limits you set. So the node’s operator cannot move your money, even if it wanted to.'),
    ),
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'What you must keep safe'),
      h(
        'ul',
        null,
        h('li', null, h('strong', null, 'Your 24 recovery words'), ', written down when your signer was set up (shown once). They are your keys: with them, your money can always be found again.'),
        h('li', null, h('strong', null, 'Your signer’s passphrase'), ', which unlocks the signer’s saved keys. If you lose it but still have the 24 words, you can restore the signer.'),
        h('li', null, h('strong', null, 'Your signer’s folder'), ' (', code('~/.micronode-signer'), ' by default). It remembers the latest state of every channel. Back it up after your channels change.'),
      ),
      h('p', null, 'If you lose the 24 words ', h('em', null, 'and'), ' the signer’s keys or passphrase, the money is lost. There is no back door, by design.'),
    ),
    h(
      'div',
      { class: 'card' },
      h('h2', null, 'Leaving, or when the operator disappears'),
      h('p', null, 'You can take your money out without the operator’s help. On the computer with your signer, run:'),
      h('pre', null, code('micronode signer recover --to <an address of yours> \\\n  --bitcoind-rpc <your bitcoind>')),
      h('p', null, 'It needs your signer’s folder, its passphrase, and a Bitcoin node (bitcoind) you trust. It then:'),
      h(
        'ol',
        null,
        h('li', null, h('strong', null, 'Revokes the operator'), ': your signer signs nothing more for the node, even if it comes back.'),
        h('li', null, 'Catches up with the Bitcoin blockchain, and punishes anyone who tried to cheat with an old channel state.'),
        h('li', null, 'Closes each channel with the latest state your signer approved.'),
        h('li', null, 'Waits out the safety delay (about a day) and then sends your side of each channel to your address.'),
        h('li', null, 'Sends your on-chain savings to your address too, and prints the total.'),
      ),
      h('p', null, 'You can stop it and run it again safely. To see what it would do without doing it, add ', code('--dry-run'), '.'),
      h('p', null, 'To stop the operator’s access without recovering yet, run ', code('micronode signer revoke'), ' on the same computer: this wallet then shows “You revoked this node’s access”.'),
    ),
    forget ?? h('p', null, h('a', { href: '#/' }, 'Back')),
  );
  return { el };
}
