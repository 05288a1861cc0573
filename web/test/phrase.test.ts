import { describe, expect, test } from 'vitest';
import { PairingError } from '../src/lnc/errors.js';
import {
  ENTROPY_BYTES,
  entropyToPhrase,
  newPhrase,
  phraseToEntropy,
} from '../src/lnc/phrase.js';
import { hex } from './support/util.js';

const TEN_ABANDON = Array(10).fill('abandon') as string[];

function caught(f: () => unknown): PairingError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PairingError);
    return e as PairingError;
  }
  throw new Error('expected a PairingError');
}

describe('phrase', () => {
  test('known values', () => {
    expect(hex(phraseToEntropy(TEN_ABANDON))).toBe('00'.repeat(14));
    expect(entropyToPhrase(new Uint8Array(14))).toEqual(TEN_ABANDON);
    const ones = new Uint8Array(14).fill(0xff);
    ones[13] = 0xfc;
    expect(entropyToPhrase(ones)).toEqual(Array(10).fill('zoo'));
    // 'ability' is word 1, 'able' word 2: 00000000001 00000000010 ...
    const e = phraseToEntropy(['ability', 'able', ...Array(8).fill('abandon')]);
    expect(hex(e)).toBe('002008' + '00'.repeat(11));
  });

  test('round trip of random phrases; the last 2 bits are zero', () => {
    for (let i = 0; i < 50; i++) {
      const { words, entropy } = newPhrase();
      expect(words).toHaveLength(10);
      expect(entropy).toHaveLength(ENTROPY_BYTES);
      expect(entropy[13]! & 3).toBe(0);
      expect(hex(phraseToEntropy(words))).toBe(hex(entropy));
      expect(entropyToPhrase(entropy)).toEqual(words);
    }
  });

  test('case, extra whitespace, newlines and commas do not matter', () => {
    const { words, entropy } = newPhrase();
    const messy = `  ${words.slice(0, 5).join('   ').toUpperCase()}\n\t${words.slice(5).join(', ')}  `;
    expect(hex(phraseToEntropy(messy))).toBe(hex(entropy));
    expect(hex(phraseToEntropy(words.map((w) => ` ${w[0]!.toUpperCase()}${w.slice(1)} `)))).toBe(
      hex(entropy),
    );
  });

  test('wrong word count', () => {
    for (const n of [0, 1, 9, 11, 12]) {
      const e = caught(() => phraseToEntropy(Array(n).fill('abandon')));
      expect(e.code).toBe('wrong_word_count');
      expect(e.message).toBe(
        n === 0
          ? 'Enter the 10 pairing words.'
          : `The pairing phrase has 10 words; you entered ${n}.`,
      );
    }
    expect(caught(() => phraseToEntropy('   ')).code).toBe('wrong_word_count');
  });

  test('unknown word: says which, in plain words', () => {
    const words = [...TEN_ABANDON];
    words[3] = 'Abandn';
    const e = caught(() => phraseToEntropy(words));
    expect(e.code).toBe('unknown_word');
    expect(e.message).toBe("'abandn' is not one of the pairing words — check the spelling");
    expect(e.word).toBe('abandn');
    expect(e.position).toBe(4);
    expect(caught(() => phraseToEntropy('abandon '.repeat(9) + 'bitcoin1')).code).toBe(
      'unknown_word',
    );
  });

  test('entropy that is not a phrase', () => {
    expect(caught(() => entropyToPhrase(new Uint8Array(13))).code).toBe('bad_entropy');
    expect(caught(() => entropyToPhrase(new Uint8Array(16))).code).toBe('bad_entropy');
    const e = new Uint8Array(14);
    e[13] = 0x01; // one of the 2 padding bits
    expect(caught(() => entropyToPhrase(e)).code).toBe('bad_entropy');
    e[13] = 0x02;
    expect(caught(() => entropyToPhrase(e)).code).toBe('bad_entropy');
  });
});
