//! The interactive parts of setting up a vault: choosing the passphrase and making sure the
//! tenant wrote the recovery words down. Both work on any reader and writer so they can be
//! tested; the CLI passes the terminal (and does not echo-suppress; it takes the passphrase from
//! `MICRONODE_SIGNER_PASSPHRASE` when that is set).

use std::io::{self, BufRead, Write};

use bip39::Mnemonic;
use rand::Rng;
use zeroize::Zeroizing;

use super::{Passphrase, VaultError, MIN_PASSPHRASE_CHARS};

/// How many randomly chosen words [`confirm_backup`] asks the tenant to type back.
pub const BACKUP_CHECK_WORDS: usize = 3;

/// How many tries [`confirm_backup`] gives for each word.
pub const ATTEMPTS_PER_WORD: usize = 3;

/// ANSI: clear the screen and the scrollback, cursor home. Sent after the tenant has written
/// the words down, so they are not on screen while being checked.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[3J\x1b[H";

/// Words per line when the words are listed.
const WORDS_PER_LINE: usize = 4;

/// Shows the recovery words once and checks the tenant wrote them down.
///
/// Writes the words, numbered, with a warning to write them down, and waits for Enter. Then
/// clears the screen (ANSI escape) and asks for [`BACKUP_CHECK_WORDS`] positions chosen with
/// `rng` ("Word #7: "), each answered by one line of `input` (case and surrounding whitespace
/// ignored). Returns [`VaultError::BackupNotConfirmed`] after [`ATTEMPTS_PER_WORD`] wrong
/// answers for a word, and [`VaultError::Io`] if `input` ends early. Wrong answers never
/// reveal the expected word.
pub fn confirm_backup<R: BufRead, W: Write, G: Rng + ?Sized>(
    words: &Mnemonic,
    mut input: R,
    mut output: W,
    rng: &mut G,
) -> Result<(), VaultError> {
    show_words(words, &mut output).map_err(write_error)?;
    read_line(&mut input, "waiting for Enter after the recovery words")?;
    write!(
        output,
        "{CLEAR_SCREEN}To check your copy, type the words at {BACKUP_CHECK_WORDS} positions.\n\n"
    )
    .map_err(write_error)?;

    for position in pick_positions(words.word_count(), rng) {
        let expected = words
            .words()
            .nth(position)
            .ok_or(VaultError::BackupNotConfirmed)?;
        let number = position + 1;
        let mut confirmed = false;
        for attempt in 1..=ATTEMPTS_PER_WORD {
            write!(output, "Word #{number}: ").map_err(write_error)?;
            output.flush().map_err(write_error)?;
            let answer = read_line(&mut input, &format!("reading word #{number}"))?;
            if answer.trim().eq_ignore_ascii_case(expected) {
                confirmed = true;
                break;
            }
            let left = ATTEMPTS_PER_WORD - attempt;
            if left > 0 {
                writeln!(
                    output,
                    "That is not word #{number}. Check your copy ({left} {} left).",
                    if left == 1 { "try" } else { "tries" }
                )
                .map_err(write_error)?;
            }
        }
        if !confirmed {
            writeln!(
                output,
                "Word #{number} does not match. Your copy of the recovery words is not right."
            )
            .map_err(write_error)?;
            return Err(VaultError::BackupNotConfirmed);
        }
    }
    writeln!(output, "\nRecovery words confirmed.").map_err(write_error)?;
    output.flush().map_err(write_error)
}

/// Asks for a new passphrase and for it again. Returns [`VaultError::WeakPassphrase`] if it
/// breaks [`Passphrase::check_strength`], [`VaultError::PassphraseMismatch`] if the two
/// differ, and [`VaultError::Io`] if `input` ends early. A line's ending (`\n` or `\r\n`) is
/// not part of the passphrase; everything else, spaces included, is.
pub fn read_passphrase_twice<R: BufRead, W: Write>(
    mut input: R,
    mut output: W,
) -> Result<Passphrase, VaultError> {
    write!(
        output,
        "Choose a passphrase for the seed vault (at least {MIN_PASSPHRASE_CHARS} characters): "
    )
    .map_err(write_error)?;
    output.flush().map_err(write_error)?;
    let first = Passphrase::from(read_line(&mut input, "reading the passphrase")?);
    first.check_strength()?;

    write!(output, "Type the passphrase again: ").map_err(write_error)?;
    output.flush().map_err(write_error)?;
    let second = Passphrase::from(read_line(&mut input, "reading the passphrase again")?);
    if !super::crypto::constant_time_eq(first.as_bytes(), second.as_bytes()) {
        return Err(VaultError::PassphraseMismatch);
    }
    Ok(first)
}

fn show_words(words: &Mnemonic, output: &mut impl Write) -> io::Result<()> {
    let count = words.word_count();
    writeln!(output)?;
    writeln!(
        output,
        "Your {count} recovery words. They are the only way to restore this signer's keys:"
    )?;
    writeln!(output)?;
    for (i, word) in words.words().enumerate() {
        write!(output, "  {:>2}. {word:<10}", i + 1)?;
        if (i + 1) % WORDS_PER_LINE == 0 || i + 1 == count {
            writeln!(output)?;
        }
    }
    writeln!(output)?;
    writeln!(
        output,
        "WRITE THEM DOWN on paper, in this order, and keep the paper safe and private."
    )?;
    writeln!(
        output,
        "Anyone who has these words controls the funds. Without them, a lost vault file or"
    )?;
    writeln!(
        output,
        "a forgotten passphrase cannot be recovered. Do not photograph them or store them on"
    )?;
    writeln!(output, "a computer or phone. They will not be shown again.")?;
    writeln!(output)?;
    write!(output, "Press Enter when you have written them down.")?;
    output.flush()
}

/// The word positions (0-based, ascending, distinct) [`confirm_backup`] asks for.
pub(super) fn pick_positions<G: Rng + ?Sized>(word_count: usize, rng: &mut G) -> Vec<usize> {
    let mut positions =
        rand::seq::index::sample(rng, word_count, BACKUP_CHECK_WORDS.min(word_count)).into_vec();
    positions.sort_unstable();
    positions
}

/// Reads one line without its line ending, into memory that is wiped on drop.
fn read_line(input: &mut impl BufRead, what: &str) -> Result<Zeroizing<String>, VaultError> {
    let mut line = Zeroizing::new(String::with_capacity(256));
    let read = input.read_line(&mut line).map_err(|e| VaultError::Io {
        what: what.to_string(),
        source: e,
    })?;
    if read == 0 {
        return Err(VaultError::Io {
            what: what.to_string(),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "the input ended"),
        });
    }
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(line)
}

fn write_error(e: io::Error) -> VaultError {
    VaultError::Io {
        what: "writing to the terminal".to_string(),
        source: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::io::Cursor;

    fn mnemonic() -> Mnemonic {
        // A fixed, well-known 24-word mnemonic (all-zero entropy): only for tests.
        Mnemonic::from_entropy(&[0u8; 32]).unwrap()
    }

    fn other_mnemonic() -> Mnemonic {
        Mnemonic::from_entropy(&[0x5au8; 32]).unwrap()
    }

    /// Builds the input lines: Enter, then for each position picked by a clone of the seeded
    /// rng, the answers `answer(expected_word)` yields.
    fn script(m: &Mnemonic, seed: u64, answer: impl Fn(&str) -> Vec<String>) -> String {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut input = String::from("\n");
        for position in pick_positions(m.word_count(), &mut rng) {
            let expected = m.words().nth(position).unwrap();
            for line in answer(expected) {
                input.push_str(&line);
                input.push('\n');
            }
        }
        input
    }

    fn run(m: &Mnemonic, seed: u64, input: &str) -> (Result<(), VaultError>, String) {
        let mut output = Vec::new();
        let mut rng = StdRng::seed_from_u64(seed);
        let result = confirm_backup(m, Cursor::new(input.as_bytes()), &mut output, &mut rng);
        (result, String::from_utf8(output).unwrap())
    }

    #[test]
    fn positions_are_distinct_sorted_and_in_range() {
        let mut rng = StdRng::seed_from_u64(1);
        for count in [12, 24] {
            for _ in 0..100 {
                let p = pick_positions(count, &mut rng);
                assert_eq!(p.len(), BACKUP_CHECK_WORDS);
                assert!(p.windows(2).all(|w| w[0] < w[1]), "{p:?}");
                assert!(p.iter().all(|&i| i < count));
            }
        }
    }

    #[test]
    fn confirm_backup_accepts_correct_answers() {
        let m = mnemonic();
        let input = script(&m, 42, |w| vec![w.to_string()]);
        let (result, output) = run(&m, 42, &input);
        result.unwrap();
        // Every word is listed once, numbered, with the warning.
        for (i, word) in m.words().enumerate() {
            assert!(
                output.contains(&format!("{:>2}. {word}", i + 1)),
                "{output}"
            );
        }
        assert!(output.contains("WRITE THEM DOWN"));
        assert_eq!(output.matches("Word #").count(), BACKUP_CHECK_WORDS);
        assert!(output.ends_with("Recovery words confirmed.\n"));
    }

    #[test]
    fn confirm_backup_ignores_case_and_whitespace() {
        let m = other_mnemonic();
        let input = script(&m, 7, |w| vec![format!("  {}\t", w.to_uppercase())]);
        let (result, _) = run(&m, 7, &input);
        result.unwrap();
    }

    #[test]
    fn confirm_backup_allows_retries() {
        let m = other_mnemonic();
        let input = script(&m, 9, |w| {
            vec!["wrong".into(), String::new(), w.to_string()]
        });
        let (result, output) = run(&m, 9, &input);
        result.unwrap();
        assert_eq!(
            output.matches("That is not word").count(),
            2 * BACKUP_CHECK_WORDS
        );
        // After the screen is cleared only the prompts' own words appear: no recovery word
        // is shown again, not even after a wrong answer.
        let after_clear = output.split(CLEAR_SCREEN).nth(1).unwrap();
        let prompt_words = [
            "to",
            "check",
            "your",
            "copy",
            "type",
            "the",
            "words",
            "at",
            "positions",
            "word",
            "that",
            "is",
            "not",
            "try",
            "tries",
            "left",
            "recovery",
            "confirmed",
        ];
        for token in after_clear.split(|c: char| !c.is_ascii_alphabetic()) {
            let token = token.to_ascii_lowercase();
            assert!(
                token.is_empty() || prompt_words.contains(&token.as_str()),
                "unexpected {token:?} in {after_clear}"
            );
        }
    }

    #[test]
    fn confirm_backup_rejects_wrong_answers() {
        let m = mnemonic();
        let mut rng = StdRng::seed_from_u64(3);
        let first = pick_positions(m.word_count(), &mut rng)[0];
        // The right answer for the first position comes too late (4th try).
        let right = m.words().nth(first).unwrap();
        let input = format!("\nability\nable\nabout\n{right}\n");
        let (result, output) = run(&m, 3, &input);
        assert!(
            matches!(result, Err(VaultError::BackupNotConfirmed)),
            "{result:?}"
        );
        assert_eq!(output.matches("Word #").count(), ATTEMPTS_PER_WORD + 1);
    }

    #[test]
    fn confirm_backup_fails_on_a_later_word() {
        let m = other_mnemonic();
        let mut rng = StdRng::seed_from_u64(11);
        let positions = pick_positions(m.word_count(), &mut rng);
        let first = m.words().nth(positions[0]).unwrap();
        let second = m.words().nth(positions[1]).unwrap();
        let wrong = if second == "zoo" { "abandon" } else { "zoo" };
        let input = format!("\n{first}\n{wrong}\n{wrong}\n{wrong}\n");
        let (result, output) = run(&m, 11, &input);
        assert!(
            matches!(result, Err(VaultError::BackupNotConfirmed)),
            "{result:?}"
        );
        assert_eq!(output.matches("Word #").count(), 1 + ATTEMPTS_PER_WORD + 1);
    }

    #[test]
    fn confirm_backup_fails_when_input_ends() {
        let m = mnemonic();
        for input in ["", "\n", "\nabandon\n"] {
            let (result, _) = run(&m, 5, input);
            match result {
                Err(VaultError::Io { source, .. }) => {
                    assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof)
                }
                // "abandon" may or may not be the first word asked for; the input ends either way.
                other => panic!("input {input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn read_passphrase_twice_returns_the_passphrase() {
        let mut output = Vec::new();
        let input = Cursor::new(" correct horse \r\n correct horse \r\n");
        let passphrase = read_passphrase_twice(input, &mut output).unwrap();
        assert_eq!(passphrase.as_bytes(), b" correct horse ");
        let output = String::from_utf8(output).unwrap();
        assert!(output.contains("at least 8 characters"));
        assert!(!output.contains("correct horse"));
    }

    #[test]
    fn read_passphrase_twice_rejects_mismatch() {
        let input = Cursor::new("correct horse\ncorrect horsE\n");
        let result = read_passphrase_twice(input, Vec::new());
        assert!(matches!(result, Err(VaultError::PassphraseMismatch)));
    }

    #[test]
    fn read_passphrase_twice_rejects_weak_passphrases() {
        for input in ["\n\n", "1234567\n1234567\n", "        \n        \n"] {
            let result = read_passphrase_twice(Cursor::new(input), Vec::new());
            assert!(
                matches!(result, Err(VaultError::WeakPassphrase)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn read_passphrase_twice_fails_when_input_ends() {
        for input in ["", "correct horse\n", "correct horse"] {
            let result = read_passphrase_twice(Cursor::new(input), Vec::new());
            match result {
                Err(VaultError::Io { source, .. }) => {
                    assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof)
                }
                other => panic!("input {input:?}: {other:?}"),
            }
        }
    }
}
