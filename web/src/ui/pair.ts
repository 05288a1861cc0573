// First visit: the 10 pairing words and a password for this device.

import { hexToBytes } from '../lnc/bytes.js';
import { PairingError } from '../lnc/errors.js';
import { phraseToEntropy } from '../lnc/phrase.js';
import { connect } from '../lnc/session.js';
import { parseAuthData } from '../wallet/authData.js';
import { messageFor } from '../wallet/messages.js';
import { openSealed, SealError } from '../wallet/seal.js';
import { saveWallet } from '../wallet/storage.js';
import { busy, enterSubmits, errorBox, field, h, statusBox } from './dom.js';
import { Wallet } from './wallet.js';

export const MIN_PASSWORD = 8;

/** Where a person finds the words (kept in one place, to follow the signer's wording). */
export const WHERE_ARE_THE_WORDS =
  'Your signer shows 10 pairing words when you add a device to your node. They work once, for a short time: if they were used already or have expired, make a new pairing.';

export function pairScreen(relayUrl: string, onPaired: (w: Wallet) => void): HTMLElement {
  const words = h('textarea', {
    name: 'phrase',
    rows: 3,
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    required: true,
  });
  enterSubmits(words);
  const pw1 = h('input', { type: 'password', name: 'new-password', autocomplete: 'new-password', required: true, minlength: MIN_PASSWORD });
  const pw2 = h('input', { type: 'password', name: 'repeat-password', autocomplete: 'new-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Connect');
  const error = errorBox();
  const status = statusBox();
  const progress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Progress' });

  const form = h(
    'form',
    { class: 'card', novalidate: true },
    field('Your 10 pairing words', words, WHERE_ARE_THE_WORDS),
    // For password managers: which wallet this password belongs to.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: 'micronode wallet', hidden: true, 'aria-hidden': 'true', tabindex: '-1' }),
    field('Choose a password', pw1, [
      `At least ${MIN_PASSWORD} characters. This password protects this wallet on this device. `,
      h('strong', null, 'We cannot recover it:'),
      ' if you forget it, pair again with new words. Your money stays safe either way.',
    ]),
    field('Repeat the password', pw2),
    error.el,
    progress,
    status.el,
    submit,
  );

  const setProgress = (text: string, fraction?: number): void => {
    status.set(text);
    if (fraction === undefined) {
      progress.hidden = true;
    } else {
      progress.hidden = false;
      progress.value = fraction;
    }
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (submit.disabled) return;
    error.clear();
    for (const el of [words, pw1, pw2]) el.removeAttribute('aria-invalid');
    let entropy: Uint8Array;
    try {
      entropy = phraseToEntropy(words.value);
    } catch (e) {
      words.setAttribute('aria-invalid', 'true');
      error.show(messageFor(e));
      words.focus();
      return;
    }
    if (pw1.value.length < MIN_PASSWORD) {
      pw1.setAttribute('aria-invalid', 'true');
      error.show(`Choose a password of at least ${MIN_PASSWORD} characters.`);
      pw1.focus();
      return;
    }
    if (pw1.value !== pw2.value) {
      pw2.setAttribute('aria-invalid', 'true');
      error.show('The two passwords are not the same. Type the same password twice.');
      pw2.focus();
      return;
    }
    const password = pw1.value;
    void busy(submit, 'Connecting…', async () => {
      try {
        setProgress('Checking your words… (this takes a few seconds)', 0);
        const session = await connect(relayUrl, words.value, {
          onStretchProgress: (f) => setProgress('Checking your words… (this takes a few seconds)', f),
        });
        // The pairing connection carries the handshake only (docs/pairing.md, "Connections"):
        // the wallet comes back at once with KK on the streams of the two static keys.
        const pairing = { localStatic: session.pairing.localStatic.slice(), remoteStatic: session.pairing.remoteStatic.slice() };
        const authText = new TextDecoder().decode(session.authData);
        session.close();
        setProgress('Connected to your node. Opening your payment key…');
        const auth = parseAuthData(authText);
        let appKey: Uint8Array | null = null;
        let warning = '';
        if (auth.sealed_app_key) {
          try {
            appKey = openSealed(entropy, hexToBytes(auth.sealed_app_key));
            if (appKey.length !== 32) throw new SealError('not a 32-byte key');
          } catch (e) {
            appKey = null;
            warning = messageFor(e instanceof SealError ? e : new SealError(String(e)));
          }
        }
        setProgress('Paired. Protecting this wallet with your password…', 0);
        await saveWallet(
          password,
          {
            localStatic: pairing.localStatic,
            remoteStatic: pairing.remoteStatic,
            authData: authText,
            appKey,
            relayUrl,
          },
          { onProgress: (f) => setProgress('Paired. Protecting this wallet with your password…', f) },
        );
        entropy.fill(0);
        words.value = '';
        pw1.value = '';
        pw2.value = '';
        const open = (): void => onPaired(new Wallet({ pairing, authData: authText, appKey, relayUrl }));
        if (!warning) {
          setProgress('Done.');
          open();
          return;
        }
        // The payment key did not open: something changed it on the way. Say so before going on.
        setProgress('');
        error.show(warning);
        const go = h('button', { type: 'button' }, 'Continue (this device can look but not pay)');
        go.addEventListener('click', open);
        form.append(go);
        go.focus();
      } catch (e) {
        setProgress('');
        error.show(messageFor(e));
        if (e instanceof PairingError && ['wrong_word_count', 'unknown_word', 'pairing_not_found'].includes(e.code)) {
          words.setAttribute('aria-invalid', 'true');
        }
        console.error('pairing failed', e);
      }
    });
  });

  return h(
    'section',
    { class: 'screen' },
    h('h1', null, 'Connect to your node'),
    h(
      'p',
      null,
      'This wallet shows your Lightning node’s balance and lets you receive and send bitcoin. ',
      'Your money is controlled by keys that you hold (in your signer): the company running your node cannot move it.',
    ),
    form,
    h('p', { class: 'small' }, h('a', { href: '#/recovery' }, 'How your money stays safe, and how to leave')),
  );
}
