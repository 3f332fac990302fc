//! JSON output without a serializer: the writers of the hot path (the mapper's payloads,
//! the 400 answer, the flow page's data), where a `serde_json::Value` per event would cost
//! an allocation per field.

use std::fmt;

/// Writes `n` in decimal (without the formatting machinery: this runs for most events).
pub fn write_u64<W: fmt::Write>(out: &mut W, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    let _ = out.write_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// Writes `s` as a JSON string literal.
pub fn write_json_str<W: fmt::Write>(out: &mut W, s: &str) {
    let _ = out.write_char('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        let _ = out.write_str(s);
        let _ = out.write_char('"');
        return;
    }
    for c in s.chars() {
        let _ = match c {
            '"' => out.write_str("\\\""),
            '\\' => out.write_str("\\\\"),
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32),
            c => out.write_char(c),
        };
    }
    let _ = out.write_char('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_numbers_and_escaped_strings() {
        let mut s = String::new();
        write_u64(&mut s, 0);
        s.push(' ');
        write_u64(&mut s, u64::MAX);
        s.push(' ');
        write_json_str(&mut s, "a\"b\\c\n\u{1}é");
        assert_eq!(s, r#"0 18446744073709551615 "a\"b\\c\n\u0001é""#);
    }
}
