import { defineConfig, type Plugin } from 'vitest/config';

// The page's Content Security Policy, added to the built page only (the dev server injects
// styles and scripts that it would block). Everything the page loads is its own two files; it
// talks only to the relay (its own origin by default, another with ?relay=).
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self' ws: wss:",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

function csp(): Plugin {
  return {
    name: 'micronode-csp',
    apply: 'build',
    transformIndexHtml: () => [
      { tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: CSP }, injectTo: 'head-prepend' },
    ],
  };
}

export default defineConfig({
  // Relative asset URLs: the page can be served under any path.
  base: './',
  plugins: [csp()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Exactly dist/index.html, dist/app.js and dist/app.css, so the node's binary can embed them
    // with include_bytes!: one chunk, one stylesheet, no hashed names, other assets inlined.
    cssCodeSplit: false,
    assetsInlineLimit: Number.MAX_SAFE_INTEGER,
    modulePreload: { polyfill: false },
    copyPublicDir: false,
    reportCompressedSize: false,
    sourcemap: false,
    rolldownOptions: {
      output: {
        entryFileNames: 'app.js',
        chunkFileNames: 'app-[name].js',
        assetFileNames: (asset) => (asset.names.some((n) => n.endsWith('.css')) ? 'app.css' : '[name][extname]'),
        codeSplitting: false,
      },
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    // scrypt with N = 2^16 takes about a second per call in plain JavaScript.
    testTimeout: 60_000,
  },
});
