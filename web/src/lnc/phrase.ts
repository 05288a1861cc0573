// The pairing phrase: 10 words from the BIP-39 English list, 11 bits each, packed big-endian
// into 14 bytes of entropy whose last 2 bits are zero (docs/pairing.md, "The phrase").

import { scryptAsync } from '@noble/hashes/scrypt.js';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { PairingError } from './errors.js';

export const PHRASE_WORDS = 10;
export const ENTROPY_BYTES = 14;
const BITS_PER_WORD = 11;

/** scrypt parameters, as LNC's: N = 2^16, r = 8, p = 1, 32 bytes. */
export const SCRYPT = { N: 65536, r: 8, p: 1, dkLen: 32 } as const;

let wordIndex: Map<string, number> | undefined;
function indexOf(word: string): number | undefined {
  if (!wordIndex) {
    wordIndex = new Map();
    wordlist.forEach((w, i) => wordIndex!.set(w, i));
  }
  return wordIndex.get(word);
}

/** Splits what a person typed or pasted into lower-case words. */
function normalize(words: string[] | string): string[] {
  const text = typeof words === 'string' ? words : words.join(' ');
  return text
    .normalize('NFKC')
    .toLowerCase()
    .split(/[\s,]+/u)
    .filter((w) => w.length > 0);
}

/**
 * The 14 bytes of entropy for a phrase. Accepts an array of words or one string; case and extra
 * whitespace (or commas) between words do not matter.
 * @throws PairingError `wrong_word_count` or `unknown_word` (with `word` and 1-based `position`).
 */
export function phraseToEntropy(words: string[] | string): Uint8Array {
  const list = normalize(words);
  if (list.length !== PHRASE_WORDS) {
    const n = list.length;
    throw new PairingError(
      'wrong_word_count',
      n === 0
        ? `Enter the ${PHRASE_WORDS} pairing words.`
        : `The pairing phrase has ${PHRASE_WORDS} words; you entered ${n}.`,
      { detail: `got ${n} words` },
    );
  }
  const entropy = new Uint8Array(ENTROPY_BYTES);
  let bit = 0;
  for (let i = 0; i < list.length; i++) {
    const word = list[i]!;
    const index = indexOf(word);
    if (index === undefined) {
      throw new PairingError(
        'unknown_word',
        `'${word}' is not one of the pairing words — check the spelling`,
        { word, position: i + 1 },
      );
    }
    for (let b = BITS_PER_WORD - 1; b >= 0; b--, bit++) {
      if ((index >> b) & 1) entropy[bit >> 3]! |= 0x80 >> (bit & 7);
    }
  }
  // The last 2 of the 112 bits are never written, so they are zero by construction.
  return entropy;
}

/**
 * The 10 words for 14 bytes of entropy.
 * @throws PairingError `bad_entropy` if the length is not 14 or the last 2 bits are not zero
 * (such entropy would not survive the round trip through words).
 */
export function entropyToPhrase(entropy: Uint8Array): string[] {
  if (entropy.length !== ENTROPY_BYTES) {
    throw new PairingError('bad_entropy', 'This is not a pairing phrase.', {
      detail: `entropy must be ${ENTROPY_BYTES} bytes, got ${entropy.length}`,
    });
  }
  if ((entropy[ENTROPY_BYTES - 1]! & 0x03) !== 0) {
    throw new PairingError('bad_entropy', 'This is not a pairing phrase.', {
      detail: 'the last 2 bits of the entropy must be zero',
    });
  }
  const words: string[] = [];
  let bit = 0;
  for (let i = 0; i < PHRASE_WORDS; i++) {
    let index = 0;
    for (let b = 0; b < BITS_PER_WORD; b++, bit++) {
      index = (index << 1) | ((entropy[bit >> 3]! >> (7 - (bit & 7))) & 1);
    }
    words.push(wordlist[index]!);
  }
  return words;
}

/** A fresh random phrase (crypto.getRandomValues), with its entropy (last 2 bits zero). */
export function newPhrase(): { words: string[]; entropy: Uint8Array } {
  const entropy = new Uint8Array(ENTROPY_BYTES);
  crypto.getRandomValues(entropy);
  entropy[ENTROPY_BYTES - 1]! &= 0xfc;
  return { words: entropyToPhrase(entropy), entropy };
}

/**
 * `pw = scrypt(P = entropy, S = entropy, N = 65536, r = 8, p = 1, dkLen = 32)`. Takes about a
 * second and 64 MiB; it yields to the event loop so a page stays responsive.
 */
export async function stretch(
  entropy: Uint8Array,
  onProgress?: (fraction: number) => void,
): Promise<Uint8Array> {
  return scryptAsync(entropy, entropy, {
    ...SCRYPT,
    ...(onProgress ? { onProgress } : {}),
  });
}
