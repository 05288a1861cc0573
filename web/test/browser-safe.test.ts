// The library runs in browsers: no Node-only imports, no test-only packages, no wasm.

import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const dir = fileURLToPath(new URL('../src/lnc/', import.meta.url));
const ALLOWED = /^(\.\/|@noble\/(curves|hashes|ciphers)\/|@scure\/bip39\/wordlists\/english\.js$)/;

test('src/lnc imports only the @noble/@scure packages and itself', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  expect(files.length).toBeGreaterThan(5);
  for (const f of files) {
    const src = readFileSync(dir + f, 'utf8');
    const imports = [...src.matchAll(/(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/g)].map(
      (m) => m[1]!,
    );
    for (const spec of imports) expect(spec, `${f} imports ${spec}`).toMatch(ALLOWED);
    expect(src, f).not.toMatch(/\bimport\(|\brequire\(|\bWebAssembly\b|\bprocess\.|\bBuffer\b/);
  }
});

test('the wallet (src/wallet, src/ui) imports only browser packages and the protocol', () => {
  const allowed =
    /^(\.\.?\/|@noble\/(curves|hashes|ciphers)\/|light-bolt11-decoder$|qrcode-generator$)/;
  for (const sub of ['wallet', 'ui']) {
    const d = fileURLToPath(new URL(`../src/${sub}/`, import.meta.url));
    const files = readdirSync(d).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) {
      const src = readFileSync(d + f, 'utf8');
      const imports = [...src.matchAll(/(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/g)].map((m) => m[1]!);
      for (const spec of imports) expect(spec, `${sub}/${f} imports ${spec}`).toMatch(allowed);
      expect(src, f).not.toMatch(/\bimport\(|\brequire\(|\bWebAssembly\b|\bprocess\.|\bBuffer\b|\binnerHTML\b|\beval\(/);
    }
  }
});
