//! Lower-case hexadecimal, as the platforms write request signatures and the bridge writes
//! its button tokens.

/// `bytes` as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex, an even and non-zero number of digits, and nothing else:
/// `from_str_radix` alone would also take `+f` for `0f` and upper-case digits, so one
/// signature would have several spellings.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    if s.is_empty()
        || !s.len().is_multiple_of(2)
        || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_spellings() {
        assert_eq!(encode(&[0x0f, 0xa0]), "0fa0");
        assert_eq!(decode("0fa0"), Some(vec![0x0f, 0xa0]));
        for bad in ["", "0", "0F", "+f", "zz", "é0"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
