#!/usr/bin/env node
// The wallet in a real browser, driven by the Rust end-to-end test that launched this script.
// No test runner: a line protocol over stdio (README.md, "The real-browser test").
//
//   env:    WALLET_URL (the page, served by the relay), PAIRING_PHRASE (10 words),
//           SCREENSHOT_DIR (created if missing), CHROMIUM (default /usr/bin/chromium),
//           WALLET_PASSWORD (default: a fixed test password), E2E_WAIT_MS (default 300000:
//           how long to wait for a line from stdin or for a payment)
//   stdout: BALANCE <sat> | INVOICE <bolt11> | RECEIVED <sat> | SENT <fee_sat> | NWC <uri> |
//           NWC_REVOKED | UNLOCKED <sat> | DONE | ERROR <message>
//   stdin:  RECEIVE <sat> (after BALANCE) | PAY <bolt11> (after RECEIVED)
//   stderr: the browser's console and this script's progress.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const WALLET_URL = need('WALLET_URL');
const PHRASE = need('PAIRING_PHRASE');
const SHOTS = need('SCREENSHOT_DIR');
const PASSWORD = process.env.WALLET_PASSWORD || 'correct horse battery staple';
const WAIT_MS = Number(process.env.E2E_WAIT_MS || 300_000);
const UI_MS = 60_000;

function need(name) {
  const v = process.env[name];
  if (!v) {
    process.stdout.write(`ERROR missing environment variable ${name}\n`);
    process.exit(1);
  }
  return v;
}

function say(line) {
  process.stdout.write(`${line}\n`);
}

function log(line) {
  process.stderr.write(`[e2e] ${line}\n`);
}

// Lines from stdin, waited for by their first word.
const lines = [];
const waiters = [];
createInterface({ input: process.stdin }).on('line', (line) => {
  const t = line.trim();
  if (!t) return;
  const w = waiters.shift();
  if (w) w(t);
  else lines.push(t);
});

async function expectLine(word) {
  const line =
    lines.shift() ??
    (await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${word}" line on stdin within ${WAIT_MS} ms`)), WAIT_MS);
      waiters.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    }));
  const [first, ...rest] = line.split(/\s+/);
  if (first !== word || rest.length === 0) throw new Error(`expected "${word} <value>" on stdin, got "${line}"`);
  return rest.join(' ');
}

mkdirSync(SHOTS, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'micronode-e2e-'));
let context;
let page;

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, name), fullPage: true });
  log(`screenshot ${name}`);
}

async function nav(label) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await page.getByRole('heading', { level: 1 }).first().waitFor();
}

async function balance() {
  const el = page.getByTestId('spendable');
  await el.and(page.locator('[data-sat]')).waitFor({ timeout: UI_MS });
  return Number(await el.getAttribute('data-sat'));
}

async function run() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 1,
  });
  context.setDefaultTimeout(UI_MS);
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => process.stderr.write(`[console.${m.type()}] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[pageerror] ${e.message}\n`));

  // 1. Pair, then the balance.
  log(`opening ${WALLET_URL}`);
  await page.goto(WALLET_URL);
  await page.getByRole('heading', { name: 'Connect to your node' }).waitFor();
  await page.getByLabel('Your 10 pairing words').fill(PHRASE);
  await page.getByLabel('Choose a password').fill(PASSWORD);
  await page.getByLabel('Repeat the password').fill(PASSWORD);
  await shot('01-pair.png');
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.getByRole('heading', { name: 'Your balance' }).waitFor({ timeout: 2 * UI_MS });
  const spendable = await balance();
  await page.getByTestId('signer').and(page.locator('[data-state]')).waitFor();
  await shot('02-home.png');
  say(`BALANCE ${spendable}`);

  // 2. Receive.
  const amount = await expectLine('RECEIVE');
  await nav('Receive');
  await page.getByLabel('Amount (sats)').fill(amount);
  await page.getByLabel('Note for the payer (optional)').fill('micronode e2e');
  await page.getByRole('button', { name: 'Create payment request' }).click();
  const invoiceBox = page.getByRole('textbox', { name: 'Payment request text' });
  await invoiceBox.waitFor();
  say(`INVOICE ${await invoiceBox.inputValue()}`);
  const received = page.getByRole('status').filter({ hasText: /^Received/ });
  await received.waitFor({ timeout: WAIT_MS });
  await shot('03-receive.png');
  say(`RECEIVED ${await received.getAttribute('data-received-sat')}`);

  // 3. Send.
  const bolt11 = await expectLine('PAY');
  await nav('Send');
  await page.getByLabel('Payment request (invoice)').fill(bolt11);
  await page.getByRole('button', { name: 'Check payment request' }).click();
  await page.getByRole('heading', { name: 'Check before you pay' }).waitFor();
  await page.getByRole('button', { name: /^Pay / }).click();
  const sent = page.getByTestId('sent');
  const failed = page.locator('.status.failure, .review .error:not([hidden])');
  await sent.or(failed).first().waitFor({ timeout: WAIT_MS });
  if (!(await sent.isVisible())) throw new Error(`the payment failed: ${(await failed.first().innerText()).replace(/\s+/g, ' ')}`);
  await shot('04-send.png');
  say(`SENT ${await sent.getAttribute('data-fee-sat')}`);

  // 4. Connected apps: create, then revoke.
  await nav('Apps');
  await page.getByLabel('App name').fill('test app');
  await page.getByLabel('Spending limit (sats)').fill('1000');
  await page.getByLabel('Limit resets').selectOption('day');
  await page.getByRole('button', { name: 'Create connection' }).click();
  const link = page.getByRole('textbox', { name: 'Connection link' });
  await link.waitFor();
  const uri = await link.inputValue();
  if (!uri.startsWith('nostr+walletconnect://')) throw new Error(`not an NWC URI: ${uri}`);
  await shot('05-nwc-created.png');
  say(`NWC ${uri}`);
  await page.getByRole('button', { name: 'I have saved it' }).click();
  await page.getByRole('button', { name: 'Revoke test app', exact: true }).click();
  await page.getByRole('button', { name: 'Yes, revoke test app' }).click();
  await page.locator('[data-app-id]').filter({ hasText: 'test app' }).filter({ hasText: 'Revoked' }).first().waitFor();
  await shot('06-nwc-revoked.png');
  say('NWC_REVOKED');

  // 5. History and the recovery page.
  await nav('History');
  await page.locator('li.payment').first().waitFor();
  await shot('07-history.png');
  await nav('Recovery');
  await page.getByRole('heading', { name: 'Leaving, or when the operator disappears' }).waitFor();
  await shot('08-recovery.png');

  // 6. A later visit: reload, unlock with the password (KK), the balance again.
  await page.reload();
  await page.getByRole('heading', { name: 'Unlock your wallet' }).waitFor();
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Unlock', exact: true }).click();
  await page.getByRole('heading', { name: 'Your balance' }).waitFor({ timeout: 2 * UI_MS });
  const after = await balance();
  await shot('09-unlock.png');
  say(`UNLOCKED ${after}`);
  say('DONE');
}

let code = 0;
try {
  await run();
} catch (e) {
  code = 1;
  const message = (e instanceof Error ? e.message : String(e)).split('\n')[0];
  say(`ERROR ${message}`);
  log(e instanceof Error ? (e.stack ?? e.message) : String(e));
  try {
    if (page) await page.screenshot({ path: join(SHOTS, 'error.png'), fullPage: true });
  } catch {
    // no page to show
  }
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
