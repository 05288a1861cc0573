// Pays through an L402 paywall with the stock client of @getalby/lightning-tools.
//
//   node fetch.mjs <wall URL> <payer URL>
//
// `wallet.payInvoice({ invoice })` POSTs `{"invoice": "..."}` to the payer URL, which pays it
// (crates/wall/tests runs one in front of a real LDK node) and answers `{"preimage": "<hex>"}`.
// Prints one JSON line: the final response's status and body, and whether the client paid.
import { fetchWithL402 } from "@getalby/lightning-tools/402/l402";

const [wallUrl, payerUrl] = process.argv.slice(2);
if (!wallUrl || !payerUrl) {
  console.error("usage: node fetch.mjs <wall URL> <payer URL>");
  process.exit(2);
}

const wallet = {
  async payInvoice({ invoice }) {
    const response = await fetch(payerUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ invoice }),
    });
    if (!response.ok) {
      throw new Error(`the payer answered ${response.status}: ${await response.text()}`);
    }
    const { preimage } = await response.json();
    return { preimage };
  },
};

try {
  const response = await fetchWithL402(wallUrl, {}, { wallet });
  const body = await response.text();
  console.log(
    JSON.stringify({
      status: response.status,
      body,
      paid: response.payment?.paid ?? false,
      amount_sat: response.payment?.amountSat ?? 0,
    }),
  );
} catch (error) {
  console.error(`fetchWithL402 failed: ${error?.stack ?? error}`);
  process.exit(1);
}
