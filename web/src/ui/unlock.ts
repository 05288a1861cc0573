// Later visits: the password opens the wallet saved on this device.

import { forgetWallet, loadWallet, StorageError } from '../wallet/storage.js';
import { messageFor } from '../wallet/messages.js';
import { busy, errorBox, field, h, statusBox } from './dom.js';
import { Wallet } from './wallet.js';

export function unlockScreen(relayOverride: string | null, defaultRelay: string, onUnlocked: (w: Wallet) => void, onForgotten: () => void): HTMLElement {
  const pw = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Unlock');
  const error = errorBox();
  const status = statusBox();
  const progress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Unlocking' });

  const form = h('form', { class: 'card', novalidate: true }, h('input', { type: 'text', name: 'username', autocomplete: 'username', value: 'micronode wallet', hidden: true, 'aria-hidden': 'true', tabindex: '-1' }), field('Password', pw, 'The password you chose when you connected this device.'), error.el, progress, status.el, submit);

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (submit.disabled) return;
    error.clear();
    pw.removeAttribute('aria-invalid');
    if (!pw.value) {
      error.show('Type your password.');
      pw.setAttribute('aria-invalid', 'true');
      pw.focus();
      return;
    }
    void busy(submit, 'Unlocking…', async () => {
      progress.hidden = false;
      status.set('Opening your wallet…');
      try {
        const secrets = await loadWallet(pw.value, { onProgress: (f) => (progress.value = f) });
        pw.value = '';
        status.set('Connecting to your node…');
        onUnlocked(
          new Wallet({
            pairing: { localStatic: secrets.localStatic, remoteStatic: secrets.remoteStatic },
            authData: secrets.authData,
            appKey: secrets.appKey,
            relayUrl: relayOverride ?? (secrets.relayUrl || defaultRelay),
          }),
        );
      } catch (e) {
        status.set('');
        error.show(messageFor(e));
        if (e instanceof StorageError && e.code === 'wrong_password') {
          pw.setAttribute('aria-invalid', 'true');
          pw.select();
          pw.focus();
        }
      } finally {
        progress.hidden = true;
      }
    });
  });

  // Forgetting asks first, in the page (no browser pop-up).
  const confirmBox = h('div', { class: 'confirm', hidden: true, role: 'group', 'aria-labelledby': 'forget-q' });
  const forgetButton = h('button', { type: 'button', class: 'link-button' }, 'Forget this wallet');
  const yes = h('button', { type: 'button', class: 'danger' }, 'Yes, forget it');
  const no = h('button', { type: 'button' }, 'Cancel');
  confirmBox.append(
    h('p', { id: 'forget-q' }, 'Remove this wallet from this browser? Your money stays safe on your node. To use it here again you will need new pairing words.'),
    h('div', { class: 'row' }, yes, no),
  );
  forgetButton.addEventListener('click', () => {
    confirmBox.hidden = false;
    no.focus();
  });
  no.addEventListener('click', () => {
    confirmBox.hidden = true;
    forgetButton.focus();
  });
  yes.addEventListener('click', () => {
    forgetWallet();
    onForgotten();
  });

  return h(
    'section',
    { class: 'screen' },
    h('h1', null, 'Unlock your wallet'),
    h('p', null, 'This device is connected to your node. Type your password to open your wallet.'),
    form,
    h('div', { class: 'card subtle' }, h('p', null, 'Forgot the password? Forget this wallet on this device, then connect again with new pairing words from your signer.'), forgetButton, confirmBox),
  );
}
