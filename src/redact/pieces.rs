//! Text that arrives in pieces (a local command's output as its pipe hands it over, a
//! running execution's output read again and again by `!st2tail`) is masked a piece at a
//! time. A cut through a secret would let each half pass the [`Redactor`](super::Redactor)
//! unrecognised, so pieces end only where no secret the redactor knows can straddle the
//! cut: after a line's end, and never inside a private-key block that has begun but not
//! ended. What is left waits for more text, or for the end of the output.

/// Text held back at most while no safe cut comes (one very long line): beyond this it is
/// released anyway, so the held part — and a reader's wait — stays bounded.
pub const MAX_HELD: usize = 64 * 1024;

/// How many bytes at the start of `text` can be masked on their own now, the output going
/// on; the rest waits. (At the output's end, all of it can.)
pub fn settled_len(text: &str) -> usize {
    let mut end = text.rfind('\n').map_or(0, |nl| nl + 1);
    // A private-key block begun in the settled part and not ended there waits whole.
    let settled = &text[..end];
    if let Some(begin) = open_key_block(settled) {
        end = begin;
    }
    if text.len() - end > MAX_HELD {
        // Released at a character boundary near the end: bounded beats perfect.
        end = text.len() - MAX_HELD / 2;
        while !text.is_char_boundary(end) {
            end += 1;
        }
    }
    end
}

/// Where the last `-----BEGIN … PRIVATE KEY…-----` line of `text` starts, when no
/// `-----END` follows it.
fn open_key_block(text: &str) -> Option<usize> {
    let begin = text.rfind("-----BEGIN ")?;
    let line_end = text[begin..].find('\n').map_or(text.len(), |n| begin + n);
    if !text[begin..line_end].contains("PRIVATE KEY") {
        return None;
    }
    if text[begin..].contains("-----END ") {
        return None;
    }
    Some(text[..begin].rfind('\n').map_or(0, |nl| nl + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_ends_after_the_last_whole_line() {
        assert_eq!(settled_len("one\ntwo\nthr"), 8);
        assert_eq!(settled_len("one\ntwo\n"), 8);
        assert_eq!(settled_len("no line end yet"), 0);
        assert_eq!(settled_len(""), 0);
    }

    #[test]
    fn a_private_key_begun_waits_until_it_ends() {
        let open = "log\nkey: -----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc";
        assert_eq!(settled_len(open), 4);
        let closed =
            "log\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nmore";
        assert_eq!(settled_len(closed), closed.len() - "more".len());
        // A certificate is no secret: nothing waits for its end.
        let cert = "-----BEGIN CERTIFICATE-----\nMIID\nrest";
        assert_eq!(settled_len(cert), cert.len() - "rest".len());
    }

    #[test]
    fn what_is_held_stays_bounded() {
        let line = "é".repeat(MAX_HELD);
        let end = settled_len(&line);
        assert!(line.is_char_boundary(end));
        assert!(line.len() - end <= MAX_HELD / 2 + 1);
        assert!(end > 0);
    }

    #[test]
    fn masking_in_pieces_masks_what_masking_whole_does() {
        use crate::redact::{RedactConfig, Redactor};
        let redactor = Redactor::new(&RedactConfig::default()).expect("defaults");
        let output = "start\ntoken AKIAIOSFODNN7EXAMPLE here\n\
                      -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n\
                      -----END OPENSSH PRIVATE KEY-----\nend\n";
        // Every way of cutting the output in two pieces.
        for cut in (0..=output.len()).filter(|&c| output.is_char_boundary(c)) {
            let mut pending = String::new();
            let mut shown = String::new();
            for piece in [&output[..cut], &output[cut..]] {
                pending.push_str(piece);
                let n = settled_len(&pending);
                shown.push_str(&redactor.redact(&pending[..n], &[]));
                pending.drain(..n);
            }
            shown.push_str(&redactor.redact(&pending, &[]));
            assert!(
                !shown.contains("AKIAIOSFODNN7EXAMPLE"),
                "cut at {cut}: {shown}"
            );
            assert!(!shown.contains("b3BlbnNzaC1rZXkt"), "cut at {cut}: {shown}");
            assert!(!shown.contains("AAAAA\n-----END"), "cut at {cut}: {shown}");
        }
    }
}
