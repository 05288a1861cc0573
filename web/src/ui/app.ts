// The wallet page: pair or unlock, then the screens, switched by the address's #fragment.

import { PairingError } from '../lnc/errors.js';
import { messageFor } from '../wallet/messages.js';
import type { StateInfo } from '../wallet/rpc.js';
import { forgetWallet, hasWallet } from '../wallet/storage.js';
import { appsScreen } from './apps.js';
import { focusHeading, h, replace } from './dom.js';
import { historyScreen } from './history.js';
import { homeScreen } from './home.js';
import { pairScreen } from './pair.js';
import { receiveScreen } from './receive.js';
import { recoveryScreen } from './recovery.js';
import type { Screen } from './screen.js';
import { sendScreen } from './send.js';
import { unlockScreen } from './unlock.js';
import type { Wallet } from './wallet.js';

const ROUTES: { path: string; label: string; make: (w: Wallet, app: App) => Screen }[] = [
  { path: 'home', label: 'Home', make: (w) => homeScreen(w) },
  { path: 'receive', label: 'Receive', make: (w) => receiveScreen(w) },
  { path: 'send', label: 'Send', make: (w) => sendScreen(w) },
  { path: 'history', label: 'History', make: (w) => historyScreen(w) },
  { path: 'apps', label: 'Apps', make: (w) => appsScreen(w) },
  { path: 'recovery', label: 'Recovery', make: (_w, app) => recoveryScreen(() => app.forget()) },
];

/** The relay: `?relay=` if given, else the page's own origin (the relay serves the page). */
export function relayFromLocation(loc: Location): { override: string | null; fallback: string } {
  const override = new URLSearchParams(loc.search).get('relay');
  return { override: override && override.trim() ? override.trim() : null, fallback: loc.origin };
}

export class App {
  private wallet: Wallet | null = null;
  private screen: Screen | null = null;
  private readonly main: HTMLElement;
  private readonly banner: HTMLElement;
  private readonly nav: HTMLElement;
  private readonly lockButton: HTMLButtonElement;
  private readonly who: HTMLElement;
  private unState: (() => void) | null = null;
  private readonly relay = relayFromLocation(location);

  constructor(root: HTMLElement) {
    this.main = h('main', { id: 'main', tabindex: '-1' });
    this.banner = h('div', { class: 'banner', role: 'status', hidden: true });
    this.nav = h('nav', { 'aria-label': 'Main', hidden: true });
    this.lockButton = h('button', { type: 'button', class: 'link-button', hidden: true }, 'Lock');
    this.lockButton.addEventListener('click', () => this.lock());
    this.who = h('span', { class: 'who' });
    replace(
      root,
      h('a', { href: '#main', class: 'skip' }, 'Skip to content'),
      h('header', { class: 'top' }, h('span', { class: 'brand' }, 'micronode wallet'), this.who, this.lockButton),
      this.banner,
      this.nav,
      this.main,
    );
    window.addEventListener('hashchange', () => this.route());
    // Leaving the page ends the session and wipes the keys in memory (also for the back/forward cache).
    window.addEventListener('pagehide', () => {
      if (this.wallet) this.lock();
    });
  }

  start(): void {
    if (this.wallet) return this.route();
    if (hasWallet()) {
      this.show({ el: unlockScreen(this.relay.override, this.relay.fallback, (w) => this.opened(w), () => this.forgotten()) });
    } else {
      this.show({ el: pairScreen(this.relay.override ?? this.relay.fallback, (w) => this.opened(w)) });
    }
  }

  forget(): void {
    this.lock();
    forgetWallet();
    this.forgotten();
  }

  private forgotten(): void {
    location.hash = '';
    this.start();
  }

  private lock(): void {
    this.unState?.();
    this.unState = null;
    this.wallet?.lock();
    this.wallet = null;
    this.nav.hidden = true;
    this.lockButton.hidden = true;
    this.banner.hidden = true;
    replace(this.who);
    this.start();
  }

  private opened(w: Wallet): void {
    this.wallet = w;
    this.lockButton.hidden = false;
    if (w.auth.label) replace(this.who, w.auth.label);
    this.unState = w.rpc.onState((s) => this.showState(s));
    this.showState(w.rpc.info);
    // Always start at the balance once the wallet opens (hashchange routes; same hash: route now).
    if (location.hash === '#/home') this.route();
    else location.hash = '#/home';
  }

  private showState(s: StateInfo): void {
    if (s.state === 'connected') {
      this.banner.hidden = true;
      replace(this.banner);
      return;
    }
    this.banner.hidden = false;
    this.banner.className = `banner ${s.state}`;
    const why = s.lastError ? h('span', { class: 'small' }, ' ', whyText(s.lastError)) : null;
    const retry = h('button', { type: 'button', class: 'link-button' }, 'Try now');
    retry.addEventListener('click', () => this.wallet?.rpc.reconnectNow());
    if (s.state === 'connecting') replace(this.banner, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Connecting to your node…', why, s.attempt > 0 ? retry : null);
    else if (s.state === 'reconnecting') replace(this.banner, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Reconnecting…', why, retry);
    else replace(this.banner, 'Disconnected. ', why);
  }

  private route(): void {
    if (!this.wallet) {
      // Before unlocking, only the safety page is reachable (from its link); on load, the
      // address's #fragment waits until the wallet is open.
      if (location.hash === '#/recovery') return this.show(recoveryScreen(), true);
      return this.start();
    }
    const path = location.hash.replace(/^#\/?/, '') || 'home';
    const route = ROUTES.find((r) => r.path === path) ?? ROUTES[0]!;
    replace(
      this.nav,
      h(
        'ul',
        null,
        ROUTES.map((r) =>
          h('li', null, h('a', { href: `#/${r.path}`, 'aria-current': r === route ? 'page' : null }, r.label)),
        ),
      ),
    );
    this.nav.hidden = false;
    this.show(route.make(this.wallet, this), true);
  }

  private show(screen: Screen, focus = false): void {
    this.screen?.dispose?.();
    this.screen = screen;
    replace(this.main, screen.el);
    document.title = `${screen.el.querySelector('h1')?.textContent ?? 'Wallet'} · micronode wallet`;
    if (focus) focusHeading(this.main);
    else (this.main.querySelector('textarea, input') as HTMLElement | null)?.focus();
  }
}

function whyText(e: unknown): string {
  if (e instanceof PairingError) {
    if (e.code === 'relay_not_found') return 'Your node is not answering yet (it may be restarting).';
    if (e.code === 'relay_unreachable') return 'The relay cannot be reached: check your internet connection.';
  }
  return messageFor(e);
}
