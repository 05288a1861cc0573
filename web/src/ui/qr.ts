// QR codes as SVG, drawn from qrcode-generator's modules with DOM calls (no HTML strings).

import qrcode from 'qrcode-generator';
import { svg } from './dom.js';

/**
 * A QR code of `text`. Invoices go upper-case in alphanumeric mode (smaller codes, and wallets
 * read them); URIs go as bytes.
 */
export function qrCode(text: string, label: string, mode: 'invoice' | 'bytes' = 'bytes'): SVGElement {
  const qr = qrcode(0, 'M');
  if (mode === 'invoice') qr.addData(text.toUpperCase(), 'Alphanumeric');
  else qr.addData(text, 'Byte');
  qr.make();
  const n = qr.getModuleCount();
  const margin = 4;
  let d = '';
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.isDark(r, c)) d += `M${c + margin} ${r + margin}h1v1h-1z`;
    }
  }
  const size = n + 2 * margin;
  return svg(
    'svg',
    {
      class: 'qr',
      viewBox: `0 0 ${size} ${size}`,
      role: 'img',
      'aria-label': label,
      'shape-rendering': 'crispEdges',
    },
    svg('rect', { width: size, height: size, fill: '#fff' }),
    svg('path', { d, fill: '#000' }),
  );
}
