/** A screen of the wallet: its element, and what to stop when it is left. */
export interface Screen {
  el: HTMLElement;
  dispose?(): void;
}
