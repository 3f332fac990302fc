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

/// Writes `n` in decimal.
pub fn write_i64<W: fmt::Write>(out: &mut W, n: i64) {
    if n < 0 {
        let _ = out.write_char('-');
    }
    write_u64(out, n.unsigned_abs());
}

/// Writes `x` (finite, not negative, at most two decimals) as Rust's shortest `Display`
/// of it would (`4.4`, `92.55`, `3`), from its hundredths.
pub fn write_hundredths<W: fmt::Write>(out: &mut W, x: f64) {
    let c = (x * 100.0).round().max(0.0) as u64;
    write_u64(out, c / 100);
    let frac = c % 100;
    if frac != 0 {
        let _ = out.write_char('.');
        if frac < 10 {
            let _ = out.write_char('0');
            write_u64(out, frac);
        } else if frac.is_multiple_of(10) {
            write_u64(out, frac / 10);
        } else {
            write_u64(out, frac);
        }
    }
}

/// Writes an IP address as its `Display` would.
pub fn write_ip<W: fmt::Write>(out: &mut W, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    let _ = out.write_char('.');
                }
                write_u64(out, u64::from(o));
            }
        }
        v6 => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Writes a socket address as its `Display` would (`10.0.0.1:8088`, `[2001:db8::1]:8088`).
pub fn write_socket_addr<W: fmt::Write>(out: &mut W, a: std::net::SocketAddr) {
    match a {
        std::net::SocketAddr::V4(v4) => {
            write_ip(out, (*v4.ip()).into());
            let _ = out.write_char(':');
            write_u64(out, u64::from(v4.port()));
        }
        v6 => {
            let _ = write!(out, "{v6}");
        }
    }
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

    #[test]
    fn hundredths_read_as_rusts_display_of_the_rounded_value() {
        for c in 0..=10_000u64 {
            let x = c as f64 / 100.0;
            let mut s = String::new();
            write_hundredths(&mut s, x);
            assert_eq!(s, format!("{x}"), "{c} hundredths");
        }
    }

    #[test]
    fn addresses_and_signed_numbers_read_as_display() {
        let mut s = String::new();
        write_ip(&mut s, [10, 0, 255, 1].into());
        s.push(' ');
        write_ip(&mut s, "2001:db8::1".parse().unwrap());
        s.push(' ');
        write_i64(&mut s, -1);
        s.push(' ');
        write_i64(&mut s, i64::MIN);
        assert_eq!(s, "10.0.255.1 2001:db8::1 -1 -9223372036854775808");
        for a in ["10.0.255.1:8088", "0.0.0.0:0", "[2001:db8::1]:65535"] {
            let a: std::net::SocketAddr = a.parse().unwrap();
            let mut s = String::new();
            write_socket_addr(&mut s, a);
            assert_eq!(s, a.to_string());
        }
    }
}
